"""The router's fast read of a message: only what it needs to place a packet.

:func:`peek` finds the top Via (branch, sent-by, rport), Call-ID, CSeq, the
To-tag, the first Route and the Request-URI without parsing anything else
(DESIGN.md "Ownership"; STYLE.md §3).  It is called for every packet, so it
runs a handful of C-level regex searches and nothing per header.  Values are
the bytes as written.

Each of those headers is read from its first line only, and only in its plain
shape (RFC 3261 §20.42 Via without quoted strings, §20.8 Call-ID, §20.16 CSeq
below 2**31, §20.34 Route as ``<URI>``).  A message whose first such line has
another shape, whose Request-Line carries a SIP version other than 2.0, or
that has folded header lines (all rare) is read through the full parser
instead, which either gives the same fields or raises the precise SipError.

When the optional C extension :mod:`sipfarm.sip._speedups` is built, :func:`peek`
reads through it; :func:`_peek_py` stays the reference, and the C code hands it
every message it does not read itself (the full-parser cases above, bare LF
line ends, no header end), so the answer is the same with or without it.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .cseq import CSEQ_LIMIT
from .errors import BadRequest
from .message import Request, parse

__all__ = ["Peek", "peek"]

# Searched in the lower-cased header block; values are cut from the original at the
# same offsets (lower() keeps every byte where it is).  Each header pattern matches the
# FIRST line of that header (its name and colon); the value group is optional, so it is
# None when that first line does not have the plain shape, and the message then goes to
# the full parser.  No pattern can backtrack more than linearly.
_VIA = re.compile(
    rb"\n(?:via|v)[ \t]*:(?:[ \t]*sip[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*[a-z]+[ \t]+"
    rb'([^;, \t\r\n"]+)[ \t]*((?:;[^,"\r\n]*)?)[,\r])?'
)
_CALL_ID = re.compile(rb"\n(?:call-id|i)[ \t]*:(?:[ \t]*([\x21-\x7e]+)[ \t]*\r\n)?")
_CSEQ = re.compile(rb"\ncseq[ \t]*:(?:[ \t]*([0-9]{1,10})[ \t]+([a-z0-9\-.!%*_+`'~]+)[ \t]*\r\n)?")
_TO = re.compile(rb"\n(?:to|t)[ \t]*:([^\r\n]*)")
_ROUTE = re.compile(rb'\nroute[ \t]*:(?:[a-z0-9\-.!%*_+`\'~ \t]*<([^<>" \t\r\n]+)>)?')
_BRANCH = re.compile(rb";[ \t]*branch[ \t]*=[ \t]*([^;, \t\r\n]+)")
_RPORT = re.compile(rb";[ \t]*rport(?:[ \t]*=[ \t]*([0-9]*))?[ \t]*(?:;|\Z)")
_TAG = re.compile(rb";[ \t]*tag[ \t]*=[ \t]*([^;, \t\r\n>]+)")
_METHOD = re.compile(rb"[A-Za-z0-9\-.!%*_+`'~]+\Z")  # RFC 3261 §25.1 token
_OTHER_VERSION = re.compile(rb"sip/[0-9]+\.[0-9]+\Z")  # lower-cased; 2.0 is tested first
_FOLD = re.compile(rb"\n[ \t]")


class Peek(NamedTuple):
    """What the farm router reads of a packet, as the bytes on the wire; ``None`` when absent."""

    method: bytes | None  # None for a response
    status: int | None  # None for a request
    request_uri: bytes | None
    branch: bytes | None
    sent_by: bytes | None
    rport: bytes | None  # b'' when asked for without a value
    call_id: bytes | None
    cseq_seq: int | None
    cseq_method: bytes | None
    to_tag: bytes | None
    route: bytes | None  # URI of the first Route entry

    @property
    def is_request(self) -> bool:
        return self.method is not None


_new = tuple.__new__


try:
    from ._speedups import peek as _peek_c  # type: ignore[import-not-found]
except ImportError:  # built without a C compiler: the pure-Python read alone
    _peek_c = None


def peek(data: bytes) -> Peek:
    """Read the routing fields of ``data``; raises BadRequest when it is not SIP at all."""
    if _peek_c is not None:
        try:
            fields = _peek_c(data)
        except ValueError as exc:  # the C code's "not SIP": the same reason as _peek_py's
            raise BadRequest(str(exc)) from None
        if fields is not None:
            return _new(Peek, fields)
    return _peek_py(data)


def _peek_py(data: bytes) -> Peek:
    """The reference read in pure Python (regex searches over the lower-cased header block)."""
    if data[:2] == b"\r\n":
        data = data.lstrip(b"\r\n")
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return _peek_parsed(data)  # bare LF line ends, or no header end: the parser decides
    low = data[: end + 2].lower()
    if _FOLD.search(low) is not None:
        return _peek_parsed(data)
    eol = low.find(b"\r\n")
    if low[:4] == b"sip/":  # RFC 3261 §7.2: SIP/2.0 SP 3DIGIT SP, the code 100 to 699
        code = data[8:11]
        if (
            eol < 12
            or low[:8] != b"sip/2.0 "
            or data[11:12] != b" "
            or not code.isdigit()
            or not b"100" <= code <= b"699"
        ):
            raise BadRequest("Malformed Status-Line")
        method = request_uri = None
        status: int | None = int(code)
    else:  # RFC 3261 §7.1: token SP Request-URI SP SIP/2.0
        parts = data[:eol].split(b" ")
        if len(parts) != 3:
            raise BadRequest("Malformed Request-Line")
        method, request_uri, version = parts
        if (
            not request_uri
            or b"\t" in request_uri
            or not (method.isalpha() or _METHOD.match(method) is not None)
        ):
            raise BadRequest("Malformed Request-Line")
        version = version.lower()
        if version != b"sip/2.0":
            if _OTHER_VERSION.match(version) is not None:
                return _peek_parsed(data)  # the parser answers 505 (RFC 3261 §21.5.6)
            raise BadRequest("Malformed Request-Line")
        status = None

    branch = sent_by = rport = None
    m = _VIA.search(low)
    if m is not None:
        if m.start(1) < 0:
            return _peek_parsed(data)
        sent_by = data[m.start(1) : m.end(1)]
        ps, pe = m.span(2)
        params = low[ps:pe]
        if params:
            b = _BRANCH.search(params)
            if b is not None:
                branch = data[ps + b.start(1) : ps + b.end(1)]
            if b"rport" in params:
                r = _RPORT.search(params)
                if r is not None:
                    rport = r.group(1) or b""

    call_id = None
    m = _CALL_ID.search(low)
    if m is not None:
        if m.start(1) < 0:
            return _peek_parsed(data)
        call_id = data[m.start(1) : m.end(1)]

    cseq_seq: int | None = None
    cseq_method = None
    m = _CSEQ.search(low)
    if m is not None:
        seq = int(m.group(1)) if m.start(1) >= 0 else CSEQ_LIMIT
        if seq >= CSEQ_LIMIT:  # RFC 3261 §8.1.1.5: the parser answers "CSeq number too large"
            return _peek_parsed(data)
        cseq_seq, cseq_method = seq, data[m.start(2) : m.end(2)]

    to_tag = None
    m = _TO.search(low)
    if m is not None:
        ts, te = m.span(1)
        gt = low.rfind(b">", ts, te)
        t = _TAG.search(low, gt + 1 if gt >= 0 else ts, te)
        if t is not None:
            to_tag = data[t.start(1) : t.end(1)]

    route = None
    if b"\nroute" in low:
        m = _ROUTE.search(low)
        if m is not None:
            if m.start(1) < 0:
                return _peek_parsed(data)
            route = data[m.start(1) : m.end(1)]

    return _new(Peek, (
        method, status, request_uri, branch, sent_by, rport, call_id, cseq_seq, cseq_method,
        to_tag, route,
    ))  # fmt: skip


def _peek_parsed(data: bytes) -> Peek:
    """What the fast read leaves to the full parse: take the same fields from it."""
    msg = parse(data)
    top = msg.via[0]

    def b(text: str | None) -> bytes | None:
        return None if text is None else text.encode("utf-8", "surrogateescape")

    route = str(msg.route[0].uri) if msg.route else None
    if isinstance(msg, Request):
        method, status, ruri = b(msg.method), None, b(str(msg.uri))
    else:
        method, status, ruri = None, msg.status, None
    return Peek(
        method, status, ruri, b(top.branch), b(top.sent_by), b(top.rport), b(msg.call_id),
        msg.cseq.seq, b(msg.cseq.method), b(msg.to.tag), b(route),
    )  # fmt: skip
