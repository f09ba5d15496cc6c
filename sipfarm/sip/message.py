"""SIP requests and responses: parse bytes, serialise back (RFC 3261 §7, §20, §25).

:func:`parse` reads one whole message (a datagram, or what the stream framer
cut out).  It checks the start line and every header the core relies on
(Via, From, To, Call-ID, CSeq, Max-Forwards, Content-Length, Contact, Route,
Record-Route) and raises a :class:`~sipfarm.sip.errors.SipError` for anything
broken; every other header is kept as written and checked only when read.

A parsed message keeps its bytes, so ``bytes(parse(data))`` is ``data`` (less
leading CRLFs and bytes past Content-Length).  A message changed with
:meth:`Message.replace` or built in code serialises its header list, where
untouched lines are written back as they were.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Self

from .cseq import CSeq, parse_cseq
from .errors import BadRequest, VersionNotSupported
from .grammar import TOKEN, WS, split_comma
from .headers import COMPACT, SINGLE, HeaderField, Headers, canonical
from .nameaddr import NameAddr, parse_nameaddr
from .uri import SipUri, Uri, parse_uri
from .via import Via, parse_via, stamp_received

__all__ = ["Message", "Request", "Response", "parse"]

SIP_VERSION = "SIP/2.0"

_NOT_PARSED: Any = None


@dataclass(slots=True, kw_only=True)
class Message:
    """What requests and responses share: the header list, the body and the typed headers.

    Treat it as immutable: edits go through :meth:`replace` / :meth:`evolve`.  It
    is not ``frozen=True`` because a frozen dataclass's ``__init__`` costs about
    4 µs for these fields on the hot path (measured with ``loadtest/bench_parser.py``).
    """

    headers: Headers
    body: bytes = b""
    version: str = SIP_VERSION
    raw: bytes = field(default=b"", compare=False, repr=False)

    # Typed views of the headers the core relies on.  They are derived from
    # ``headers`` unless ``via`` is given: code that builds a message from
    # values it already holds (a response from its request) passes them all.
    via: tuple[Via, ...] = field(compare=False, repr=False, default=_NOT_PARSED)
    from_: NameAddr = field(compare=False, repr=False, default=_NOT_PARSED)
    to: NameAddr = field(compare=False, repr=False, default=_NOT_PARSED)
    call_id: str = field(compare=False, repr=False, default=_NOT_PARSED)
    cseq: CSeq = field(compare=False, repr=False, default=_NOT_PARSED)
    max_forwards: int | None = field(compare=False, repr=False, default=None)
    content_length: int | None = field(compare=False, repr=False, default=None)
    contact: tuple[NameAddr, ...] = field(compare=False, repr=False, default=())
    contact_star: bool = field(compare=False, repr=False, default=False)
    route: tuple[NameAddr, ...] = field(compare=False, repr=False, default=())
    record_route: tuple[NameAddr, ...] = field(compare=False, repr=False, default=())

    def __post_init__(self) -> None:
        if self.via is _NOT_PARSED:
            _derive(self, self.headers)

    def start_line(self) -> str:
        raise NotImplementedError

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied, its typed headers derived again from its list."""
        return dataclasses.replace(self, raw=b"", via=_NOT_PARSED, **changes)

    def evolve(self, headers: Headers, **typed: Any) -> Self:
        """A copy with ``headers``; the caller names every typed view that changes with them."""
        return dataclasses.replace(self, raw=b"", headers=headers, **typed)

    def __bytes__(self) -> bytes:
        if self.raw:
            return self.raw
        head = bytes(self.headers)
        if "content-length" not in self.headers:
            head += b"Content-Length: %d\r\n" % len(self.body)
        return self.start_line().encode("utf-8", "surrogateescape") + b"\r\n" + head + (
            b"\r\n" + self.body
        )


@dataclass(slots=True, kw_only=True)
class Request(Message):
    """``Method SP Request-URI SP SIP-Version`` (RFC 3261 §7.1)."""

    method: str
    uri: Uri

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"

    def with_received(self, host: str, port: int) -> Request:
        """The request as the server transport passes it up (RFC 3261 §18.2.1, RFC 3581 §4)."""
        top = self.via[0]
        stamped = stamp_received(top, host, port)
        if stamped is top:
            return self
        pos = self.headers.position("via")
        assert pos is not None
        field_ = self.headers.fields("via")[0]
        elems = split_comma(field_.value)
        elems[0] = str(stamped)
        headers = self.headers.replace_at(pos, ", ".join(elems))
        return self.evolve(headers, via=(stamped, *self.via[1:]))


@dataclass(slots=True, kw_only=True)
class Response(Message):
    """``SIP-Version SP Status-Code SP Reason-Phrase`` (RFC 3261 §7.2)."""

    status: int
    reason: str

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


def _single(headers: Headers, name: str) -> str | None:
    values = headers.get_all(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"Multiple {canonical(name)} header fields")
    return values[0]


def _required(headers: Headers, name: str) -> str:
    value = _single(headers, name)
    if value is None:
        raise BadRequest(f"Missing {canonical(name)} header field")
    return value


def _digits(value: str, name: str) -> int:
    if not value.isdigit() or not value.isascii() or len(value) > 10:
        raise BadRequest(f"Bad {name}")
    return int(value)


def _derive(m: Message, h: Headers) -> None:
    """Fill the typed header views of ``m``; raises BadRequest where one is broken."""
    vias = h.get_all("via")
    if not vias:
        raise BadRequest("Missing Via header field")
    if len(vias) == 1 and "," not in vias[0]:
        m.via = (parse_via(vias[0]),)
    else:
        m.via = tuple(parse_via(v) for line in vias for v in split_comma(line))
    m.from_ = parse_nameaddr(_required(h, "from"))
    m.to = parse_nameaddr(_required(h, "to"))
    call_id = _required(h, "call-id")
    if " " in call_id or not call_id.isprintable():
        raise BadRequest("Bad Call-ID")
    m.call_id = call_id
    m.cseq = parse_cseq(_required(h, "cseq"))
    mf = h.get("max-forwards")
    if mf is not None:
        hops = _digits(mf, "Max-Forwards")
        if hops > 255:
            raise BadRequest("Max-Forwards out of range")
        m.max_forwards = hops
    cl = h.get("content-length")
    if cl is not None:
        m.content_length = _digits(cl, "Content-Length")
    contacts = h.get_all("contact")
    if contacts:
        if len(contacts) == 1 and contacts[0] == "*":
            m.contact_star = True
        else:
            elems = [v for line in contacts for v in split_comma(line)]
            if "*" in elems:
                raise BadRequest("Contact '*' mixed with other contacts")
            m.contact = tuple(parse_nameaddr(v) for v in elems)
    if "route" in h:
        m.route = tuple(parse_nameaddr(v) for v in h.values("route"))
    if "record-route" in h:
        m.record_route = tuple(parse_nameaddr(v) for v in h.values("record-route"))


def _split_head(data: bytes) -> tuple[bytes, int]:
    """The header block (start line included) and the offset where the body starts."""
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        return data[:end], end + 4
    end = data.find(b"\n\n")
    if end >= 0:  # bare LF line ends: tolerated (RFC 3261 §7 asks CRLF)
        return data[:end], end + 2
    raise BadRequest("Missing empty line after header fields")


_new_field = tuple.__new__


def _parse_headers(lines: list[str]) -> Headers:
    fields: list[HeaderField] = []
    index: dict[str, list[int]] = {}
    folded: dict[int, list[str]] = {}  # field position -> its continuation lines
    i = 0
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name or not TOKEN.issuperset(name):
            if line and line[0] in WS:  # folding: RFC 3261 §7.3.1
                if not fields:
                    raise BadRequest("Folded line before the first header field")
                folded.setdefault(i - 1, []).append(line)
                continue
            name = name.rstrip(WS)
            if not colon or not name or not TOKEN.issuperset(name):
                raise BadRequest("Malformed header line" if line else "Empty header line")
        k = name.lower()
        if len(k) == 1:
            k = COMPACT.get(k, k)
        idx = index.get(k)
        if idx is None:
            index[k] = [i]
        elif k in SINGLE:
            raise BadRequest(f"Multiple {canonical(k)} header fields")
        else:
            idx.append(i)
        fields.append(_new_field(HeaderField, (name, value.strip(WS), line)))
        i += 1
    for pos, more in folded.items():  # joined once, so many folds stay linear
        f = fields[pos]
        value = " ".join([f[1], *(x.strip(WS) for x in more)]).strip(WS)
        fields[pos] = _new_field(HeaderField, (f[0], value, "\r\n".join([f[2], *more])))
    return Headers._from_parsed(tuple(fields), index)


def parse(data: bytes) -> Request | Response:
    """Parse one whole SIP message (RFC 3261 §7); raises SipError when it is broken."""
    if data[:2] == b"\r\n":  # RFC 3261 §7.5: CRLFs before the start line are ignored
        data = data.lstrip(b"\r\n")
    head_bytes, body_at = _split_head(data)
    head = head_bytes.decode("utf-8", "surrogateescape")
    if "\r\n" in head:
        lines = head.split("\r\n")
        if "\n" in head.replace("\r\n", ""):
            lines = [x.rstrip("\r") for x in head.split("\n")]
    else:
        lines = [x.rstrip("\r") for x in head.split("\n")]
    start = lines[0]
    headers = _parse_headers(lines[1:])

    body = data[body_at:]
    cl_text = headers.get("content-length")
    if cl_text is not None and cl_text.isdigit() and cl_text.isascii():
        length = int(cl_text)
        if length > len(body):
            raise BadRequest("Content-Length larger than the message")
        if length < len(body):  # RFC 3261 §18.3: bytes past the body are discarded
            body = body[:length]
            data = data[: body_at + length]

    if start.startswith("SIP/") or start[:4].upper() == "SIP/":
        return _parse_response(start, headers, body, data)
    return _parse_request(start, headers, body, data)


def _check_version(version: str) -> str:
    if version == SIP_VERSION:
        return version
    upper = version.upper()
    if upper == SIP_VERSION:
        return version
    if upper.startswith("SIP/"):
        major, dot, minor = upper[4:].partition(".")
        if dot and major.isdigit() and minor.isdigit():
            raise VersionNotSupported()
    raise BadRequest("Bad SIP-Version")


def _parse_request(start: str, headers: Headers, body: bytes, raw: bytes) -> Request:
    parts = start.split(" ")
    if len(parts) != 3 or not all(parts):
        raise BadRequest("Malformed Request-Line")
    method, uri_text, version = parts
    if not TOKEN.issuperset(method):
        raise BadRequest("Bad method")
    version = _check_version(version)
    if "\t" in uri_text:
        raise BadRequest("Malformed Request-Line")
    uri = parse_uri(uri_text)
    if type(uri) is SipUri and uri.headers:
        raise BadRequest("Request-URI with headers")  # RFC 3261 §19.1.1, table 1
    return Request(method=method, uri=uri, headers=headers, body=body, version=version, raw=raw)


def _parse_response(start: str, headers: Headers, body: bytes, raw: bytes) -> Response:
    version, sp, rest = start.partition(" ")
    code, _, reason = rest.partition(" ")
    if not sp or len(code) != 3 or not code.isdigit() or not code.isascii():
        raise BadRequest("Malformed Status-Line")
    status = int(code)
    if not 100 <= status <= 699:
        raise BadRequest("Status code out of range")
    version = _check_version(version)
    return Response(
        status=status, reason=reason, headers=headers, body=body, version=version, raw=raw
    )
