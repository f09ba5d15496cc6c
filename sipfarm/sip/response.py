"""Responses built from their request (RFC 3261 §8.2.6), and from what survives of a broken one."""

from __future__ import annotations

import re

from .errors import SipError
from .headers import HeaderField, Headers
from .message import Request, Response
from .nameaddr import tag_of
from .via import parse_via, stamp_received

__all__ = ["REASONS", "make_response", "salvage_response"]

_new = tuple.__new__  # NamedTuple instances without the Python-level __new__ (hot path)

#: Reason phrases of RFC 3261 §21 and the extensions the server answers with.
REASONS: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    423: "Interval Too Brief",
    430: "Flow Failed",
    439: "First Hop Lacks Outbound Support",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    493: "Undecipherable",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    headers: tuple[tuple[str, str], ...] = (),
    to_tag: str | None = None,
    body: bytes = b"",
) -> Response:
    """The response to ``request`` (RFC 3261 §8.2.6.2).

    Via (every line, in order), From, Call-ID and CSeq are copied as written;
    To too, with ``to_tag`` added when the request's To has no tag and
    ``status`` > 100 (§8.2.6.2); ``headers`` follow; Content-Length closes.
    100 Trying copies Timestamp (§8.2.6.1).  The response's wire form is made
    here, once.
    """
    if not 100 <= status <= 699:
        raise ValueError(f"status {status} out of range")
    src = request.headers
    fields = src.fields_key("via")
    fields += src.fields_key("from")
    to = request._to
    to_field = src.fields_key("to")[0]
    if to_tag is not None and status > 100:
        has_tag = to.tag is not None if to is not None else tag_of(to_field[1]) is not None
        if not has_tag:
            to = None  # the response's To view is read from its line when asked for
            to_field = _new(HeaderField, (to_field[0], f"{to_field[1]};tag={to_tag}", ""))
    fields.append(to_field)
    fields += src.fields_key("call-id")
    fields += src.fields_key("cseq")
    if status == 100:
        fields += src.fields_key("timestamp")
    fields += [_new(HeaderField, (n, v, "")) for n, v in headers]
    fields.append(_new(HeaderField, ("Content-Length", str(len(body)), "")))
    reason = reason or REASONS.get(status, "Unknown")
    hdrs = Headers(fields)
    raw = b"SIP/2.0 %d %s\r\n%s\r\n%s" % (
        status,
        reason.encode("utf-8", "surrogateescape"),
        bytes(hdrs),
        body,
    )
    response = Response(status=status, reason=reason, headers=hdrs, body=body, raw=raw)
    response._call_id = request._call_id
    response._cseq = request._cseq
    response._max_forwards = None
    response._content_length = len(body)
    response._via = request._via
    response._from = request._from
    response._to = to
    return response


_SALVAGE = re.compile(
    rb"^(via|v|from|f|to|t|call-id|i|cseq)[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?$", re.I | re.M
)
_SALVAGE_KEY = {b"v": b"via", b"f": b"from", b"t": b"to", b"i": b"call-id"}


def salvage_response(
    data: bytes,
    error: SipError,
    to_tag: str | None = None,
    received: tuple[str, int] | None = None,
) -> bytes | None:
    """Answer ``error`` to a request that did not parse, if enough of it survives.

    The request needs a start line that is not a Status-Line and is not ACK
    (ACK is never answered, §17.2.1), and Via, From, To, Call-ID and CSeq lines
    (RFC 3261 §8.2.6.2: what a response must copy).  With ``received`` (the
    source address), the top Via gets received/rport as any request's would
    (RFC 3261 §18.2.1, RFC 3581), when it parses.  Returns the response's
    bytes, or ``None`` when nothing can be answered (the edge then drops and
    counts the message).
    """
    head_end = data.find(b"\r\n\r\n")
    head = data if head_end < 0 else data[:head_end]
    first, _, rest = head.partition(b"\n")
    if first[:4].upper() == b"SIP/" or first[:4] == b"ACK " or b" " not in first:
        return None
    found: dict[bytes, list[bytes]] = {}
    for m in _SALVAGE.finditer(rest):
        name = m.group(1).lower()
        name = _SALVAGE_KEY.get(name, name)
        found.setdefault(name, []).append(m.group(2))
    if any(k not in found for k in (b"via", b"from", b"to", b"call-id", b"cseq")):
        return None
    cseq = found[b"cseq"][0]
    if cseq.split(b" ")[-1].upper() == b"ACK":
        return None
    to = found[b"to"][0]
    if to_tag is not None and b";tag=" not in to.lower().replace(b" ", b""):
        to += b";tag=" + to_tag.encode()
    reason = error.reason.encode("utf-8", "replace").replace(b"\r", b" ").replace(b"\n", b" ")
    vias = found[b"via"]
    if received is not None:
        vias = [_stamp_top(vias[0], received), *vias[1:]]
    out = [b"SIP/2.0 %d %s" % (error.status, reason)]
    out.extend(b"Via: " + v for v in vias)
    out.append(b"From: " + found[b"from"][0])
    out.append(b"To: " + to)
    out.append(b"Call-ID: " + found[b"call-id"][0])
    out.append(b"CSeq: " + cseq)
    out.extend(f"{n}: {v}".encode() for n, v in error.headers)
    out.append(b"Content-Length: 0")
    return b"\r\n".join(out) + b"\r\n\r\n"


def _stamp_top(line: bytes, received: tuple[str, int]) -> bytes:
    first, comma, rest = line.partition(b",")
    try:
        via = parse_via(first.decode("utf-8", "surrogateescape").strip())
    except SipError:
        return line  # the Via is what broke: copy it as it came
    stamped = str(stamp_received(via, received[0], received[1])).encode("utf-8", "surrogateescape")
    return stamped + comma + rest
