"""The regex syntax checks are conservative: what they accept, the typed parsers accept."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from sipfarm.sip import parse_nameaddr, parse_via
from sipfarm.sip.grammar import split_comma
from sipfarm.sip.syntax import NAMEADDR, NAMEADDR_LIST, VIA_LINE

_PIECES = [
    "sip:",
    "sips:",
    "tel:",
    "alice",
    "@",
    "example.com",
    "192.0.2.1",
    "256.1.1.1",
    "[2001:db8::1]",
    ":5060",
    ":99999",
    ";",
    "=",
    "tag",
    "lr",
    "transport=tcp",
    "<",
    ">",
    '"',
    "\\",
    " ",
    "\t",
    ",",
    "?",
    "%41",
    "-",
    ".",
    "a-",
    "SIP/2.0/UDP ",
    "branch=z9hG4bK1",
    "rport",
    "received",
    "Alice Smith",
    "é",
    "0",
    "q=0.5",
]
_values = st.lists(st.sampled_from(_PIECES), max_size=14).map("".join)


def _typed_nameaddrs(text: str) -> None:
    for element in split_comma(text):
        parse_nameaddr(element)


@settings(max_examples=1500, deadline=None)
@given(_values)
@example('"A \\" B" <sip:alice@example.com:5060;lr>;tag=x, <sips:b@192.0.2.1>')
@example("Alice Smith <sip:alice@a->")
def test_nameaddr_patterns_accept_only_what_the_parser_accepts(text: str) -> None:
    if NAMEADDR.match(text):
        parse_nameaddr(text)
    if NAMEADDR_LIST.match(text):
        _typed_nameaddrs(text)


@settings(max_examples=1500, deadline=None)
@given(_values)
@example("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport, SIP/2.0/TCP example.com")
def test_via_pattern_accepts_only_what_the_parser_accepts(text: str) -> None:
    if VIA_LINE.match(text):
        for element in split_comma(text):
            parse_via(element)
