"""The proxy leaves nothing behind: no reference cycles, empty tables once timers ran.

A member keeps the cyclic collector's full passes out of the way (sipfarm/node.py),
so every structure of a call must be freed by reference counting alone.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from corepair import CALLEE, CALLEE2, Pair, make_core, register
from test_proxy_core import ACK, CANCEL, TRUSTED, answer_to, from_callee, invite


@pytest.fixture
def no_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def answered(pair: Pair) -> None:
    fwd = pair.feed(invite())[1]
    from_callee(pair, answer_to(fwd, 180))
    from_callee(pair, answer_to(fwd, 200))
    pair.feed(ACK)
    (bye,) = pair.feed(ACK.replace("ACK sip", "BYE sip").replace("1 ACK", "2 BYE"))
    from_callee(pair, answer_to(bye, 200))


def cancelled(pair: Pair) -> None:
    fwd = pair.feed(invite())[1]
    from_callee(pair, answer_to(fwd, 180))
    pair.feed(CANCEL)
    from_callee(pair, answer_to(fwd, 487))


def busy(pair: Pair) -> None:
    fwd = pair.feed(invite())[1]
    from_callee(pair, answer_to(fwd, 486))


def unanswered(pair: Pair) -> None:
    pair.feed(invite())


def ringing_forever(pair: Pair) -> None:
    fwd = pair.feed(invite())[1]
    from_callee(pair, answer_to(fwd, 180))  # then timer C, a CANCEL nobody answers


def forked(pair: Pair) -> None:
    register(pair, "bob", "sip:bob@198.51.100.3:5070")
    out = pair.feed(invite())
    branches = {s.address: s for s in out[1:]}
    from_callee(pair, answer_to(branches[CALLEE2], 180, tag="b2"), CALLEE2)
    from_callee(pair, answer_to(branches[CALLEE], 200))
    from_callee(pair, answer_to(request_of_cancel(pair), 200), CALLEE2)
    from_callee(pair, answer_to(branches[CALLEE2], 487, tag="b2"), CALLEE2)


def request_of_cancel(pair: Pair):  # type: ignore[no-untyped-def]
    return next(s for s in reversed(pair.sent) if s.data.startswith(b"CANCEL"))


FLOWS = [answered, cancelled, busy, unanswered, ringing_forever, forked]


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.__name__)
def test_a_call_leaves_no_cycles_and_empty_tables(flow, no_collector: None) -> None:  # type: ignore[no-untyped-def]
    pair = make_core(trusted=TRUSTED)
    register(pair, "bob", "sip:bob@198.51.100.2:5070")
    pair.advance(10.0)
    gc.collect()  # the core's own structures (core <-> layer <-> proxy live as long as it)
    flow(pair)
    pair.advance(600.0)  # every timer (C is 180 s, the CANCEL's own wait 32 s) has run
    assert len(pair.core.layer) == 0
    assert pair.core.next_deadline() is None
    pair.sent.clear()
    assert gc.collect() == 0, "the proxy made a reference cycle"
