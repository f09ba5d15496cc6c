"""Sans-IO framing of SIP messages on a stream transport (RFC 3261 §18.3).

A stream (TCP, TLS, WebSocket-less SCTP …) carries messages back to back; the only
delimiter is the empty line that ends the header section and the Content-Length of the
body after it, which is therefore mandatory on a stream (RFC 3261 §18.3, §20.14).
:class:`StreamFramer` cuts the bytes it is fed into whole messages and parses nothing
else: the edge hands each message to :func:`sipfarm.sip.parse`.

CRLFs between messages are skipped (RFC 3261 §7.5); a double CRLF is a keep-alive
"ping" (RFC 5626 §3.5.1) and is counted in :attr:`StreamFramer.pings_received`, so that
the edge can answer each with a single CRLF "pong".

A framing error desynchronises the stream for good: the framer raises, and raises again
on every later :meth:`StreamFramer.feed`; the edge answers if it can and closes the
connection.
"""

from __future__ import annotations

import re

from .errors import BadRequest, MessageTooLarge, SipError

__all__ = ["StreamFramer"]

#: Content-Length, or its compact form ``l`` (RFC 3261 §7.3.3), at the start of a header
#: line; SP/HTAB before the colon (HCOLON), the value may be folded (RFC 3261 §7.3.1).
_CONTENT_LENGTH = re.compile(
    rb"\r\n(?:content-length|l)[ \t]*:((?:[^\r\n]|\r\n[ \t])*)", re.IGNORECASE
)
_FOLD = re.compile(rb"\r\n[ \t]+")
#: CR and LF before a start-line: keep-alives and stray line ends (RFC 3261 §7.5).
_LINE_ENDS = re.compile(rb"[\r\n]*")
_END_OF_HEADER = b"\r\n\r\n"
#: More digits than this cannot be a length below any sane max_message_size.
_MAX_DIGITS = 10


class StreamFramer:
    """Cuts a byte stream into SIP messages (RFC 3261 §18.3); sans-IO.

    ``max_header_size`` bounds the start-line and header section, ``max_message_size``
    the whole message; either one exceeded raises :class:`MessageTooLarge` (513) before
    the body is buffered.
    """

    __slots__ = (
        "_broken",
        "_buf",
        "_crlfs",
        "_need",
        "_scan",
        "broken_head",
        "max_header_size",
        "max_message_size",
        "pings_received",
    )

    def __init__(self, max_message_size: int = 65535, max_header_size: int = 16384):
        if max_message_size <= 0 or max_header_size <= 0:
            raise ValueError("limits must be positive")
        self.max_message_size = max_message_size
        self.max_header_size = max_header_size
        #: Double-CRLF keep-alives seen between messages (RFC 5626 §3.5.1).
        self.pings_received = 0
        self._buf = bytearray()
        self._broken: SipError | None = None
        # Length of the message at the head of the buffer, once its header is complete.
        self._need: int | None = None
        # Offset from which to look for the end of the header section again.
        self._scan = 0
        # CRLFs seen since the last message or ping (a ping is two).
        self._crlfs = 0
        #: The start of the message that broke the framing (at most max_header_size
        #: bytes), so that the edge can answer it before it closes the connection.
        self.broken_head = b""

    @property
    def buffered(self) -> int:
        """Bytes held for a message not yet complete."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Take the next bytes of the stream; return each message they complete, in order.

        Raises :class:`BadRequest` (400) or :class:`MessageTooLarge` (513) when the bytes
        break the framing; messages completed earlier in the same call go with the
        connection, which the edge closes.
        """
        if self._broken is not None:
            raise type(self._broken)(self._broken.reason)
        buf = self._buf
        buf += data
        out: list[bytes] = []
        pos = 0
        try:
            while True:
                if self._need is None:
                    pos = self._skip_line_ends(pos)
                    if pos >= len(buf):
                        break
                    self._need = self._header(pos)
                    if self._need is None:
                        break
                end = pos + self._need
                if len(buf) < end:
                    break
                out.append(bytes(buf[pos:end]))
                pos = end
                self._need = None
                self._scan = pos
        except SipError as exc:
            self._broken = exc
            self.broken_head = bytes(buf[pos : pos + self.max_header_size])
            buf.clear()
            raise
        del buf[:pos]
        self._scan = max(0, self._scan - pos)
        return out

    def _skip_line_ends(self, pos: int) -> int:
        """Skip CR/LF before a start-line, counting pings; a lone trailing CR waits."""
        buf = self._buf
        m = _LINE_ENDS.match(buf, pos)
        run_end = m.end() if m is not None else pos
        if run_end == pos:
            self._crlfs = 0
            return pos
        end = run_end
        if run_end == len(buf) and buf[run_end - 1] == 0x0D:
            end -= 1  # maybe the first half of a CRLF
        crlfs = self._crlfs + buf.count(b"\r\n", pos, end)
        self.pings_received += crlfs // 2
        # A start-line follows: an odd CRLF before it is a stray line end, not half a ping.
        self._crlfs = crlfs % 2 if run_end == len(buf) else 0
        self._scan = end
        return end

    def _header(self, pos: int) -> int | None:
        """Length of the message starting at ``pos``, None while its header is incomplete."""
        buf = self._buf
        start = max(pos, self._scan)
        eoh = buf.find(_END_OF_HEADER, start)
        if eoh < 0:
            if len(buf) - pos > self.max_header_size:
                raise MessageTooLarge("Header section too large")
            self._scan = max(pos, len(buf) - 3)
            return None
        header_len = eoh + 4 - pos
        if header_len > self.max_header_size:
            raise MessageTooLarge("Header section too large")
        end = eoh + 4
        m = _CONTENT_LENGTH.search(buf, pos, end)
        if m is None:
            raise BadRequest("Missing Content-Length")
        if _CONTENT_LENGTH.search(buf, m.end(), end) is not None:
            raise BadRequest("Multiple Content-Length")
        value = m.group(1)
        if b"\r" in value:
            value = _FOLD.sub(b" ", value)
        value = value.strip(b" \t")
        if not value.isdigit():
            raise BadRequest("Bad Content-Length")
        if len(value) > _MAX_DIGITS:
            raise MessageTooLarge()
        total = header_len + int(value)
        if total > self.max_message_size:
            raise MessageTooLarge()
        return total
