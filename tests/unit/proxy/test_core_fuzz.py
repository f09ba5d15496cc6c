"""Whatever arrives, the member core answers, forwards or drops it: it never raises.

The torture corpus, the calls of test_proxy_core.py and Hypothesis mutations of
both go through a SipCore that has a registered callee, over UDP and TCP, from a
trusted and an untrusted source, with time moving on between messages.
"""

from __future__ import annotations

import sys
from pathlib import Path

from corepair import CALLER, make_core, register, wire
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_proxy_core import ACK, CANCEL, invite

from sipfarm.actions import Drop, Send, Source
from sipfarm.sip import SipError, parse

# the torture corpus and its mutators live with the parser tests
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sip"))
import sipcorpus as CORPUS

CALL = [wire(invite()), wire(CANCEL), wire(ACK), wire(ACK.replace("ACK", "BYE"))]
SOURCES = [CALLER, Source("TCP", "198.51.100.1", 40000), Source("UDP", "203.0.113.9", 5060)]


def check(outcome: object) -> None:
    if isinstance(outcome, Drop):
        return
    assert isinstance(outcome, list), outcome
    for send in outcome:
        assert isinstance(send, Send) and send.data, send
        assert send.transport in ("UDP", "TCP")
        try:  # what we send parses (answers to garbage are salvaged as written)
            parse(send.data)
        except SipError:
            assert send.data.startswith(b"SIP/2.0 4") or send.data.startswith(b"SIP/2.0 5")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.one_of(CORPUS.mutated(), st.sampled_from(CALL + CORPUS.MESSAGES)),
            st.sampled_from(SOURCES),
            st.floats(min_value=0, max_value=40),
        ),
        min_size=1,
        max_size=6,
    ),
    st.booleans(),
)
def test_any_message_in_any_order_is_handled(
    messages: list[tuple[bytes, Source, float]], trusted: bool
) -> None:
    pair = make_core(trusted=("198.51.100.0/24",) if trusted else ())
    register(pair, "bob", "sip:bob@198.51.100.2:5070")
    for data, source, wait in messages:
        check(pair.core.receive(data, source, pair.now))
        pair.advance(wait)
    pair.advance(600.0)
    assert len(pair.core.layer) == 0  # every transaction ends
