"""The one error table: every rule remote input can break, and the answer it gets.

A rule broken by the peer raises a :class:`SipError` subclass.  The exception
carries what the edge needs to answer it (RFC 3261 §8.2, §21): the status code,
the reason phrase (which for 400 says *what* is wrong) and the extra header
fields of the response (``Unsupported`` for 420, ``Min-Expires`` for 423 …).
An edge that catches one builds the response with
:func:`sipfarm.sip.response.make_error_response`, or, for a response or an
ACK, drops and counts it.

Our own misuse (a bug) never raises :class:`SipError`; it raises
``ValueError``/``TypeError`` and becomes a 500 and an ERROR log at the edge.
"""

from __future__ import annotations

__all__ = [
    "BadExtension",
    "BadRequest",
    "CallDoesNotExist",
    "EntityTooLarge",
    "MessageTooLarge",
    "MethodNotAllowed",
    "NotImplemented_",
    "SipError",
    "TooManyHops",
    "UnsupportedUriScheme",
    "VersionNotSupported",
]


class SipError(Exception):
    """Remote input broke a rule; the answer is ``status reason`` with ``headers``."""

    status: int = 400
    default_reason: str = "Bad Request"

    def __init__(self, reason: str | None = None, headers: tuple[tuple[str, str], ...] = ()):
        self.reason = reason or self.default_reason
        self.headers = headers
        super().__init__(f"{self.status} {self.reason}")


class BadRequest(SipError):
    """400: malformed syntax; the reason phrase names what is wrong (RFC 3261 §21.4.1)."""

    status = 400
    default_reason = "Bad Request"


class CallDoesNotExist(SipError):
    """481: no dialog or transaction matches (RFC 3261 §21.4.19)."""

    status = 481
    default_reason = "Call/Transaction Does Not Exist"


class MethodNotAllowed(SipError):
    """405: known method, not allowed here; carries Allow (RFC 3261 §21.4.6)."""

    status = 405
    default_reason = "Method Not Allowed"


class EntityTooLarge(SipError):
    """413: the body is larger than we accept (RFC 3261 §21.4.11)."""

    status = 413
    default_reason = "Request Entity Too Large"


class UnsupportedUriScheme(SipError):
    """416: the Request-URI scheme is not one we serve (RFC 3261 §21.4.14)."""

    status = 416
    default_reason = "Unsupported URI Scheme"


class BadExtension(SipError):
    """420: a Require'd option tag we do not support; carries Unsupported (§21.4.15)."""

    status = 420
    default_reason = "Bad Extension"

    def __init__(self, unsupported: list[str]):
        super().__init__(headers=(("Unsupported", ", ".join(unsupported)),))
        self.unsupported = tuple(unsupported)


class TooManyHops(SipError):
    """483: Max-Forwards reached zero (RFC 3261 §16.3 step 3, §21.4.22)."""

    status = 483
    default_reason = "Too Many Hops"


class ServerInternalError(SipError):
    """500: the server failed on this request (a bug, logged): an answer, not silence
    (RFC 3261 §21.5.1)."""

    status = 500
    default_reason = "Server Internal Error"


class NotImplemented_(SipError):
    """501: a method we do not implement (RFC 3261 §21.5.2); carries Allow."""

    status = 501
    default_reason = "Not Implemented"


class VersionNotSupported(SipError):
    """505: the SIP-Version is not SIP/2.0 (RFC 3261 §21.5.6)."""

    status = 505
    default_reason = "Version Not Supported"


class MessageTooLarge(SipError):
    """513: the message is larger than the configured maximum (RFC 3261 §21.5.8)."""

    status = 513
    default_reason = "Message Too Large"
