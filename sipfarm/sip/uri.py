"""URIs: SIP and SIPS (RFC 3261 §19.1, §25.1), tel (RFC 3966), anything else as absoluteURI.

IPv6 references follow RFC 5118: a SIP URI's IPv6 host is always in brackets,
and is checked as an address.  A parsed URI remembers the text it came from and
serialises back to exactly that text; a URI built in code serialises canonically.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

from .errors import BadRequest
from .grammar import ALPHANUM, unescape
from .params import EMPTY, Params, parse_uri_params

__all__ = ["AbsoluteUri", "SipUri", "TelUri", "Uri", "parse_host", "parse_uri"]

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*\Z")
_UNRESERVED = ALPHANUM + "-_.!~*'()"
#: user = 1*( unreserved / escaped / user-unreserved ); user-unreserved = & = + $ , ; ? /
_USER_CHARS = frozenset(_UNRESERVED + "&=+$,;?/%")
#: password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
_PASSWORD_CHARS = frozenset(_UNRESERVED + "&=+$,%")
_HOSTNAME_CHARS = frozenset(ALPHANUM + "-.")
_HEADER_CHARS = frozenset(_UNRESERVED + "[]/?:+$%=&")
_TEL_CHARS = frozenset("0123456789abcdefABCDEF*#+-.()")
#: absoluteURI opaque part: no whitespace, no delimiters that end a URI in a header.
_OPAQUE_BAD = frozenset(' \t\r\n<>"')


def parse_host(text: str) -> str:
    """Check ``host = hostname / IPv4address / IPv6reference`` (RFC 3261 §25.1, RFC 5118)."""
    if not text:
        raise BadRequest("Empty host")
    if text[0] == "[":
        if text[-1] != "]":
            raise BadRequest("Bad IPv6 reference")
        inner = text[1:-1]
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            # RFC 5118 §4.10: RFC 3261's ABNF admits "::" before an IPv4 tail
            # written as ":::"; tolerate it.
            try:
                ipaddress.IPv6Address(inner.replace(":::", "::", 1))
            except ValueError:
                raise BadRequest("Bad IPv6 reference") from None
        return text
    if not _HOSTNAME_CHARS.issuperset(text):
        raise BadRequest("Bad host")
    # hostname labels neither start nor end with '-'; an all-numeric dotted
    # host must be a valid IPv4 address.
    for label in text.split("."):
        if label.startswith("-") or label.endswith("-"):
            raise BadRequest("Bad host")
    if text[-1].isdigit() and text.replace(".", "").isdigit():
        parts = text.split(".")
        if len(parts) != 4 or any(not p or int(p) > 255 for p in parts):
            raise BadRequest("Bad IPv4 address")
    elif ".." in text or text.startswith("."):
        raise BadRequest("Bad host")
    return text


def parse_port(text: str) -> int:
    if not text.isdigit() or not text.isascii() or len(text) > 5:
        raise BadRequest("Bad port")
    port = int(text)
    if port > 65535:
        raise BadRequest("Bad port")
    return port


def _escape(text: str, allowed: frozenset[str]) -> str:
    out = []
    for ch in text:
        if ch in allowed and ch != "%":
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogateescape"))
    return "".join(out)


class SipUri(NamedTuple):
    """``sip:`` / ``sips:`` URI (RFC 3261 §19.1.1); ``user`` and ``password`` are unescaped.

    ``raw`` is the text it was parsed from ('' when built in code); it is what
    ``str()`` gives back, so a URI round-trips byte for byte.
    """

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: Params = EMPTY
    headers: tuple[tuple[str, str], ...] = ()
    scheme: str = "sip"
    raw: str = ""

    def __str__(self) -> str:
        if self.raw:
            return self.raw
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(_escape(self.user, _USER_CHARS))
            if self.password is not None:
                out.append(":" + _escape(self.password, _PASSWORD_CHARS))
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        out.append(str(self.params))
        if self.headers:
            out.append("?" + "&".join(f"{k}={v}" for k, v in self.headers))
        return "".join(out)

    @property
    def hostport(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


class TelUri(NamedTuple):
    """``tel:`` URI (RFC 3966): a global (``+…``) or local number with parameters."""

    number: str
    params: Params = EMPTY
    raw: str = ""
    scheme: str = "tel"

    @property
    def user(self) -> str:
        return self.number

    @property
    def host(self) -> None:
        return None

    def __str__(self) -> str:
        return self.raw or f"tel:{self.number}{self.params}"


class AbsoluteUri(NamedTuple):
    """Any other scheme (RFC 3261 §25.1 absoluteURI); kept opaque."""

    scheme: str
    opaque: str
    raw: str = ""

    @property
    def user(self) -> None:
        return None

    @property
    def host(self) -> None:
        return None

    @property
    def params(self) -> Params:
        return EMPTY

    def __str__(self) -> str:
        return self.raw or f"{self.scheme}:{self.opaque}"


Uri = SipUri | TelUri | AbsoluteUri


def _parse_sip(text: str, scheme: str, rest: str) -> SipUri:
    user = password = None
    at = rest.find("@")
    if at >= 0:
        userinfo = rest[:at]
        hostpart = rest[at + 1 :]
        u, colon, pw = userinfo.partition(":")
        if not u or not _USER_CHARS.issuperset(u):
            raise BadRequest("Bad user part in URI")
        user = unescape(u)
        if colon:
            if not _PASSWORD_CHARS.issuperset(pw):
                raise BadRequest("Bad password in URI")
            password = unescape(pw)
    else:
        hostpart = rest
    hp, qmark, hdrs = hostpart.partition("?")
    hostport, semi, ptext = hp.partition(";")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise BadRequest("Bad IPv6 reference")
        host = hostport[: end + 1]
        tail = hostport[end + 1 :]
        if tail and tail[0] != ":":
            raise BadRequest("Bad host")
        port_text = tail[1:] if tail else None
    else:
        host, colon, port_text_ = hostport.partition(":")
        port_text = port_text_ if colon else None
    host = parse_host(host)
    port = parse_port(port_text) if port_text is not None else None
    params = parse_uri_params(ptext) if semi else EMPTY
    headers: tuple[tuple[str, str], ...] = ()
    if qmark:
        pairs = []
        for h in hdrs.split("&"):
            k, eq, v = h.partition("=")
            if not k or not eq or not _HEADER_CHARS.issuperset(h):
                raise BadRequest("Bad URI header")
            pairs.append((k, v))
        headers = tuple(pairs)
    return SipUri(host, user, password, port, params, headers, scheme, text)


#: IPv4address or hostname (toplabel starts with a letter), as a regex (RFC 3261 §25.1).
#: Written so that it never backtracks more than once per label: it runs per packet.
HOST_PATTERN = (
    r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?![0-9A-Za-z.\-])"
    r"|(?:(?!-)[A-Za-z0-9\-]+(?<!-)\.)*[A-Za-z](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.?"
)

_FAST_SIP = re.compile(
    r"(sips?):(?:([A-Za-z0-9\-_.!~*'()&=+$,;?/]+)@)?(" + HOST_PATTERN + r")"
    r"(?::([0-9]{1,5}))?((?:;[A-Za-z0-9\-_.!~*'()\[\]/:&+$]+(?:=[A-Za-z0-9\-_.!~*'()\[\]/:&+$]+)?)*)"
    r"\Z"
)

try:  # the C read of the _FAST_SIP shape (sipfarm.sip._speedups); None for anything else
    from ._speedups import configure as _configure_c  # type: ignore[import-not-found]
    from ._speedups import parse_uri as _parse_uri_c
except ImportError:  # built without a C compiler: the Python read alone
    _parse_uri_c = None
else:
    _configure_c(sip_uri=SipUri)


def parse_uri(text: str) -> Uri:
    """Parse a URI as found in a Request-URI or inside ``<…>``."""
    if _parse_uri_c is not None:
        uri: SipUri | None = _parse_uri_c(text)
        if uri is not None:
            return uri
    m = _FAST_SIP.match(text)
    if m is not None:  # the common case: no escapes, password, IP literal or headers
        scheme, user, host, port, ptext = m.groups()
        if port is not None:
            port_no = int(port)
            if port_no > 65535:
                raise BadRequest("Bad port")
        else:
            port_no = None
        return SipUri(
            host,
            user,
            None,
            port_no,
            parse_uri_params(ptext[1:]) if ptext else EMPTY,
            (),
            scheme,
            text,
        )
    colon = text.find(":")
    if colon <= 0:
        raise BadRequest("Bad URI: no scheme")
    scheme_text = text[:colon]
    scheme = scheme_text.lower()
    rest = text[colon + 1 :]
    if scheme in ("sip", "sips"):
        return _parse_sip(text, scheme, rest)
    if not _SCHEME_RE.match(scheme_text):
        raise BadRequest("Bad URI scheme")
    if not rest or not _OPAQUE_BAD.isdisjoint(rest):
        raise BadRequest("Bad URI")
    if scheme == "tel":
        number, semi, ptext = rest.partition(";")
        if not number or not _TEL_CHARS.issuperset(number):
            raise BadRequest("Bad tel URI number")
        return TelUri(number, parse_uri_params(ptext) if semi else EMPTY, text)
    return AbsoluteUri(scheme, rest, text)
