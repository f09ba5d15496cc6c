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
from typing import Any, Self, TypeVar

from .cseq import CSeq, parse_cseq
from .errors import BadRequest, VersionNotSupported
from .grammar import TOKEN, WS, split_comma
from .headers import COMPACT, SINGLE, HeaderField, Headers, canonical
from .nameaddr import NameAddr, parse_nameaddr
from .uri import SipUri, Uri, parse_uri
from .via import Via, parse_via, stamp_received

__all__ = ["Message", "Request", "Response", "parse"]

SIP_VERSION = "SIP/2.0"

_M = TypeVar("_M", bound="Message")


@dataclass(slots=True, kw_only=True)
class Message:
    """What requests and responses share: the header list, the body and the typed headers.

    :func:`parse` reads every typed header at once (Call-ID, CSeq,
    Max-Forwards, Content-Length, Via, From, To, Contact, Route, Record-Route),
    so a message that parsed has them all well-formed; a message built in code
    reads each on first access.

    Treat it as immutable: edits go through :meth:`replace` / :meth:`evolve`.
    It is not ``frozen=True`` because it caches its typed views, and because a
    frozen dataclass's ``__init__`` costs several µs on the per-packet path.
    """

    headers: Headers
    body: bytes = b""
    version: str = SIP_VERSION
    raw: bytes = field(default=b"", compare=False, repr=False)

    _call_id: str | None = field(init=False, compare=False, repr=False, default=None)
    _cseq: CSeq | None = field(init=False, compare=False, repr=False, default=None)
    _max_forwards: int | None = field(init=False, compare=False, repr=False, default=-1)
    _content_length: int | None = field(init=False, compare=False, repr=False, default=-1)
    _via: tuple[Via, ...] | None = field(init=False, compare=False, repr=False, default=None)
    _from: NameAddr | None = field(init=False, compare=False, repr=False, default=None)
    _to: NameAddr | None = field(init=False, compare=False, repr=False, default=None)
    _contact: tuple[NameAddr, ...] | None = field(
        init=False, compare=False, repr=False, default=None
    )
    _route: tuple[NameAddr, ...] | None = field(init=False, compare=False, repr=False, default=None)
    _record_route: tuple[NameAddr, ...] | None = field(
        init=False, compare=False, repr=False, default=None
    )

    # -- typed views, parsed on first access (parse() reads the scalars at once) ---------

    @property
    def call_id(self) -> str:
        v = self._call_id
        if v is None:
            _read_scalars(self, self.headers)
            v = self._call_id
            assert v is not None
        return v

    @property
    def cseq(self) -> CSeq:
        v = self._cseq
        if v is None:
            _read_scalars(self, self.headers)
            v = self._cseq
            assert v is not None
        return v

    @property
    def max_forwards(self) -> int | None:
        if self._max_forwards == -1:
            _read_scalars(self, self.headers)
        return self._max_forwards

    @property
    def content_length(self) -> int | None:
        if self._content_length == -1:
            _read_scalars(self, self.headers)
        return self._content_length

    @property
    def via(self) -> tuple[Via, ...]:
        v = self._via
        if v is None:
            v = self._via = _parse_vias(self.headers.get_all_key("via"))
        return v

    @property
    def from_(self) -> NameAddr:
        v = self._from
        if v is None:
            v = self._from = parse_nameaddr(_required(self.headers, "from"))
        return v

    @property
    def to(self) -> NameAddr:
        v = self._to
        if v is None:
            v = self._to = parse_nameaddr(_required(self.headers, "to"))
        return v

    @property
    def contact(self) -> tuple[NameAddr, ...]:
        """The Contact values; empty for ``Contact: *`` (see :attr:`contact_star`)."""
        v = self._contact
        if v is None:
            lines = self.headers.get_all_key("contact")
            v = () if self.contact_star else _parse_list(lines)
            self._contact = v
        return v

    @property
    def contact_star(self) -> bool:
        """``Contact: *`` (RFC 3261 §10.2.2)."""
        lines = self.headers.get_all_key("contact")
        return len(lines) == 1 and lines[0] == "*"

    @property
    def route(self) -> tuple[NameAddr, ...]:
        v = self._route
        if v is None:
            v = self._route = _parse_list(self.headers.get_all_key("route"))
        return v

    @property
    def record_route(self) -> tuple[NameAddr, ...]:
        v = self._record_route
        if v is None:
            v = self._record_route = _parse_list(self.headers.get_all_key("record-route"))
        return v

    def start_line(self) -> str:
        raise NotImplementedError

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied; its typed views are read again from its list."""
        return dataclasses.replace(self, raw=b"", **changes)

    def evolve(self, headers: Headers, *, via: tuple[Via, ...] | None = None) -> Self:
        """A copy with ``headers`` that differ from ours in the Via lines only.

        The views of the other headers carry over; ``via`` is the new Via view.
        """
        new = _copy(self)  # dataclasses.replace would run __init__: µs per packet
        new.raw = b""
        new.headers = headers
        new._call_id = self._call_id
        new._cseq = self._cseq
        new._max_forwards = self._max_forwards
        new._content_length = self._content_length
        new._via = via
        new._from = self._from
        new._to = self._to
        new._contact = self._contact
        new._route = self._route
        new._record_route = self._record_route
        return new

    def __bytes__(self) -> bytes:
        if self.raw:
            return self.raw
        head = bytes(self.headers)
        if not self.headers.has_key("content-length"):
            head += b"Content-Length: %d\r\n" % len(self.body)
        return (
            self.start_line().encode("utf-8", "surrogateescape")
            + b"\r\n"
            + head
            + (b"\r\n" + self.body)
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
        rport = top.rport
        if rport is None and top.host == host:
            return self  # what stamp_received would leave as it is
        pos = self.headers.position("via")
        assert pos is not None
        field_ = self.headers.fields("via")[0]
        value = field_.value
        if "," not in value and top.received is None:
            # The common shapes, written as stamp_received writes them, without building
            # the Via: `…;rport` last, or no rport; the view is read again when asked for.
            if rport == "" and value.endswith(";rport"):
                stamped_line = f"{value}={port};received={host}"
            elif rport is None:
                stamped_line = f"{value};received={host}"
            else:
                stamped_line = ""
            if stamped_line:
                new = self.evolve(self.headers.replace_at(pos, stamped_line), via=None)
                return new
        stamped = stamp_received(top, host, port)
        if stamped is top:
            return self
        # the line parsed as _parse_vias split it: one via-parm, or a comma list
        elems = split_comma(field_.value) if "," in field_.value else [field_.value]
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


def _copy(m: _M) -> _M:
    """A shallow copy of a message (every slot), without running ``__init__``."""
    new = object.__new__(type(m))
    for name in _SLOTS[type(m)]:
        setattr(new, name, getattr(m, name))
    return new


def _required(headers: Headers, k: str) -> str:
    # SINGLE headers: the parser already refused a second line.
    value = headers.get_key(k)
    if value is None:
        raise BadRequest(f"Missing {canonical(k)} header field")
    return value


def _digits(value: str, name: str) -> int:
    if not value.isdigit() or not value.isascii() or len(value) > 10:
        raise BadRequest(f"Bad {name}")
    return int(value)


def _parse_vias(lines: list[str]) -> tuple[Via, ...]:
    if len(lines) == 1 and "," not in lines[0]:
        return (parse_via(lines[0]),)
    out: list[Via] = []
    for line in lines:
        if "," in line:
            out.extend(parse_via(v) for v in split_comma(line))
        else:
            out.append(parse_via(line))
    return tuple(out)


def _parse_list(lines: list[str]) -> tuple[NameAddr, ...]:
    if not lines:
        return ()
    return tuple(parse_nameaddr(v) for line in lines for v in split_comma(line))


def _read_scalars(m: Message, h: Headers) -> None:
    """Call-ID, CSeq, Max-Forwards and Content-Length: cheap, and needed by every message."""
    call_id = _required(h, "call-id")
    if " " in call_id or not call_id.isprintable():
        raise BadRequest("Bad Call-ID")
    m._call_id = call_id
    m._cseq = parse_cseq(_required(h, "cseq"))
    mf = h.get_key("max-forwards")
    hops = None
    if mf is not None:
        hops = _digits(mf, "Max-Forwards")
        if hops > 255:
            raise BadRequest("Max-Forwards out of range")
    m._max_forwards = hops
    cl = h.get_key("content-length")
    m._content_length = None if cl is None else _digits(cl, "Content-Length")


def _read_views(m: Message, h: Headers) -> None:
    """Parse Via, From, To, Contact, Route and Record-Route (RFC 3261 §25) into ``m``."""
    vias = h.get_all_key("via")
    if not vias:
        raise BadRequest("Missing Via header field")
    m._via = _parse_vias(vias)
    m._from = parse_nameaddr(_required(h, "from"))
    m._to = parse_nameaddr(_required(h, "to"))
    contacts = h.get_all_key("contact")
    if not contacts or (len(contacts) == 1 and contacts[0] == "*"):
        m._contact = ()
    else:
        elems = [v for line in contacts for v in split_comma(line)]
        if "*" in elems:
            raise BadRequest("Contact '*' mixed with other contacts")
        m._contact = tuple(parse_nameaddr(v) for v in elems)
    m._route = _parse_list(h.get_all_key("route"))
    m._record_route = _parse_list(h.get_all_key("record-route"))


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

try:  # the C split of the common shape (CRLF lines, `token: value`); None for the rest
    from ._speedups import split_headers as _split_c  # type: ignore[import-not-found]
except ImportError:  # built without a C compiler: _parse_headers alone
    _split_c = None


def _parse_headers(lines: list[str]) -> Headers:
    """The header lines after the start line as a Headers list (RFC 3261 §7.3).

    The reference: ``_speedups.split_headers`` returns what this returns, for the lines
    it reads (no folding, CRLF only, every line ``token: value``, no second line of a
    SINGLE header), and leaves every other block to this code and its errors.
    """
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
    split: tuple[str, tuple[HeaderField, ...], dict[str, list[int]]] | None = None
    if _split_c is not None:
        split = _split_c(head_bytes, COMPACT, SINGLE, HeaderField)
    if split is not None:
        start, fields, index = split
        headers = Headers._from_parsed(fields, index)
    else:
        head = head_bytes.decode("utf-8", "surrogateescape")
        lines = head.split("\r\n")
        if head.count("\n") != len(lines) - 1:  # bare LF line ends: tolerated (§7.5 asks CRLF)
            lines = [x.rstrip("\r") for x in head.split("\n")]
        start = lines[0]
        headers = _parse_headers(lines[1:])

    body = data[body_at:]
    cl_text = headers.get_key("content-length")
    if cl_text is not None and cl_text.isdigit() and cl_text.isascii():
        length = int(cl_text)
        if length > len(body):
            raise BadRequest("Content-Length larger than the message")
        if length < len(body):  # RFC 3261 §18.3: bytes past the body are discarded
            body = body[:length]
            data = data[: body_at + length]

    if start.startswith("SIP/") or start[:4].upper() == "SIP/":
        msg: Request | Response = _parse_response(start, headers, body, data)
    else:
        msg = _parse_request(start, headers, body, data)
    _read_scalars(msg, headers)
    _read_views(msg, headers)
    return msg


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


#: Every field of each message class (the typed-view caches too), for :func:`_copy`.
_SLOTS: dict[type, tuple[str, ...]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in (Request, Response)
}
