"""The sans-IO SIP message core (RFC 3261 §7, §20, §25; RFC 3581; RFC 5118).

Bytes in, values out: :func:`parse` for a whole message, :func:`peek` for the
router's fast read, :func:`make_response` for answers, :class:`SipError` for
everything remote input can get wrong.  No I/O, no clock, no logging here.
"""

from .auth import AuthValue, parse_auth
from .cseq import CSeq, parse_cseq
from .errors import SipError
from .headers import HeaderField, Headers
from .message import Message, Request, Response, parse
from .nameaddr import NameAddr, parse_nameaddr
from .params import Params
from .peek import Peek, peek
from .response import REASONS, make_response, salvage_response
from .uri import AbsoluteUri, SipUri, TelUri, Uri, parse_uri
from .validate import validate_request
from .via import Via, parse_via

__all__ = [
    "REASONS",
    "AbsoluteUri",
    "AuthValue",
    "CSeq",
    "HeaderField",
    "Headers",
    "Message",
    "NameAddr",
    "Params",
    "Peek",
    "Request",
    "Response",
    "SipError",
    "SipUri",
    "TelUri",
    "Uri",
    "Via",
    "make_response",
    "parse",
    "parse_auth",
    "parse_cseq",
    "parse_nameaddr",
    "parse_uri",
    "parse_via",
    "peek",
    "salvage_response",
    "validate_request",
]
