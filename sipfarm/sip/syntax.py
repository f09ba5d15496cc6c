"""Whole-value syntax checks by regular expression (RFC 3261 §25.1).

:func:`~sipfarm.sip.message.parse` must refuse a message whose Via, From, To,
Contact, Route or Record-Route is broken, but most messages never have those
values turned into objects (a stateless answer copies the lines as they are).
So parse checks each value against one compiled pattern, which runs in C; a
value the pattern does not recognise (escapes, IPv6, tel: URIs, quoted-pairs,
odd whitespace …) goes to the typed parser, which either accepts it or raises
the precise error.  The patterns are conservative: everything they accept the
typed parsers accept too (``tests/unit/sip/test_syntax.py`` holds them to it).
"""

from __future__ import annotations

import re

from .uri import HOST_PATTERN

__all__ = ["NAMEADDR", "NAMEADDR_LIST", "VIA_LINE"]

_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_SP = r"[ \t]*"
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
_QUOTED = r'"(?:[^"\\\r\n]|\\[^\r\n])*"'
_GEN_VALUE = rf"(?:{_TOKEN}|{_QUOTED}|\[[0-9A-Fa-f:.]+\])"
_HEADER_PARAMS = rf"(?:{_SP};{_SP}{_TOKEN}(?:{_SP}={_SP}{_GEN_VALUE})?)*"
_URI_CHAR = r"[A-Za-z0-9\-_.!~*'()\[\]/:&+$]"
_SIP_URI = (
    rf"sips?:(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]+@)?(?:{HOST_PATTERN})(?::{_PORT})?"
    rf"(?:;{_URI_CHAR}+(?:={_URI_CHAR}+)?)*"
)
_DISPLAY = rf"(?:{_QUOTED}{_SP}|{_TOKEN}(?:[ \t]+{_TOKEN})*{_SP})?"
_NAMEADDR = rf"{_DISPLAY}<{_SIP_URI}>{_HEADER_PARAMS}"

#: one name-addr value with header parameters (From, To)
NAMEADDR = re.compile(rf"{_NAMEADDR}{_SP}\Z")
#: one or more name-addr values with header parameters (From, To, Contact, Route …)
NAMEADDR_LIST = re.compile(rf"{_NAMEADDR}(?:{_SP},{_SP}{_NAMEADDR})*{_SP}\Z")

_VIA_PARM = rf"SIP/2\.0/[A-Za-z]+ (?:{HOST_PATTERN})(?::{_PORT})?{_HEADER_PARAMS}"
#: one Via line: one or more via-parms in their plain shape.
VIA_LINE = re.compile(rf"{_VIA_PARM}(?:{_SP},{_SP}{_VIA_PARM})*{_SP}\Z")
