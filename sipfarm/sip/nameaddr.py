"""name-addr / addr-spec with header parameters (RFC 3261 §20.10, §25.1).

From, To, Contact, Route, Record-Route and the like.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .errors import BadRequest
from .grammar import TOKEN, WS, quote, scan_quoted, unquote
from .params import EMPTY, Params, parse_header_params
from .uri import Uri, parse_uri

__all__ = ["NameAddr", "parse_nameaddr", "tag_of"]

_DISPLAY_CHARS = frozenset(TOKEN | set(WS))


class NameAddr(NamedTuple):
    """``[display-name] <uri> *(;param)``; ``display_name`` is unquoted."""

    uri: Uri
    display_name: str | None = None
    params: Params = EMPTY

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter of From and To (RFC 3261 §19.3), None when absent."""
        return self.params.get("tag")

    def with_tag(self, tag: str) -> NameAddr:
        return self._replace(params=self.params.set("tag", tag))

    def __str__(self) -> str:
        if self.display_name:
            return f"{quote(self.display_name)} <{self.uri}>{self.params}"
        return f"<{self.uri}>{self.params}"


#: the common shapes: ``"Quoted" <uri>;p``, ``Token Name <uri>;p``, ``<uri>;p``.
_FAST = re.compile(
    r'(?:"([^"\\]*)"[ \t]*|([A-Za-z0-9\-.!%*_+`\'~]+(?:[ \t]+[A-Za-z0-9\-.!%*_+`\'~]+)*)[ \t]*)?'
    r"<([^<>\s]+)>(?:[ \t]*;(.*))?\Z",
    re.S,
)

try:  # the C read of the _FAST shape (sipfarm.sip._speedups); None for anything else
    from ._speedups import configure as _configure_c  # type: ignore[import-not-found]
    from ._speedups import parse_nameaddr as _parse_nameaddr_c
except ImportError:  # built without a C compiler: the Python read alone
    _parse_nameaddr_c = None
else:
    _configure_c(name_addr=NameAddr)


def parse_nameaddr(text: str) -> NameAddr:
    """Parse one element of From, To, Contact, Route, Record-Route … (already comma-split)."""
    if _parse_nameaddr_c is not None:
        na: NameAddr | None = _parse_nameaddr_c(text)
        if na is not None:
            return na
    m = _FAST.match(text)
    if m is not None:
        quoted, token_name, uri_text, ptext = m.groups()
        return NameAddr(
            parse_uri(uri_text),
            quoted if quoted is not None else token_name,
            parse_header_params(ptext) if ptext is not None else EMPTY,
        )
    t = text.strip(WS)
    display: str | None = None
    if t.startswith('"'):
        end = scan_quoted(t, 0)
        display = unquote(t[:end])
        t = t[end:].lstrip(WS)
        if not t.startswith("<"):
            raise BadRequest("Quoted display-name without <URI>")
        lt = 0
    else:
        lt = t.find("<")
    if lt >= 0:
        if lt > 0:
            d = t[:lt].strip(WS)
            if not _DISPLAY_CHARS.issuperset(d):
                raise BadRequest("Bad display-name (must be tokens or a quoted-string)")
            display = d
        gt = t.find(">", lt)
        if gt < 0:
            raise BadRequest("Missing '>' after URI")
        uri_text = t[lt + 1 : gt]
        if not uri_text or uri_text[0] in WS or uri_text[-1] in WS:
            raise BadRequest("Whitespace inside <URI>")
        uri = parse_uri(uri_text)
        rest = t[gt + 1 :].lstrip(WS)
    else:
        semi = t.find(";")
        uri_text = (t if semi < 0 else t[:semi]).rstrip(WS)
        if "?" in uri_text or "," in uri_text:
            raise BadRequest("addr-spec with '?' or ',' must be in <>")
        if any(c in WS for c in uri_text):
            raise BadRequest("Whitespace in addr-spec")
        uri = parse_uri(uri_text)
        rest = "" if semi < 0 else t[semi:]
    if not rest:
        return NameAddr(uri, display)
    if rest[0] != ";":
        raise BadRequest("Junk after URI")
    return NameAddr(uri, display, parse_header_params(rest[1:]))


_TAG = re.compile(r";[ \t]*tag[ \t]*=[ \t]*([^; \t,]+)", re.IGNORECASE)


def tag_of(value: str) -> str | None:
    """The ``tag`` of a From or To value whose syntax was checked, without parsing its URI.

    Header parameters follow the ``>`` of a name-addr, or the URI of an addr-spec
    (RFC 3261 §20.10); a quoted value among them sends the value to the full parser.
    """
    gt = value.rfind(">")
    params = value[gt + 1 :] if gt >= 0 else value
    if '"' in params:
        return parse_nameaddr(value).tag
    m = _TAG.search(params)
    return m.group(1) if m else None
