"""Every sequence of inputs leaves each machine in a defined state or raises TransactionError.

The inputs are all the kinds a machine may be handed, the wrong ones included
(requests to a client, responses to a server, every timer, stale or not).
"""

from __future__ import annotations

import enum

from hypothesis import given, settings
from hypothesis import strategies as st
from txnmessages import INVITE, REGISTER, request, response

from sipfarm.transaction import (
    Action,
    CancelTimer,
    DeliverRequest,
    DeliverResponse,
    Event,
    InviteClientState,
    InviteClientTransaction,
    InviteServerState,
    InviteServerTransaction,
    NonInviteClientState,
    NonInviteClientTransaction,
    NonInviteServerState,
    NonInviteServerTransaction,
    RequestReceived,
    ResponseReceived,
    SendRequest,
    SendResponse,
    StartTimer,
    Terminated,
    Timer,
    TimerConfig,
    TimerFired,
    Transaction,
    TransactionError,
    TransportError,
    TuSendResponse,
    make_ack,
)

ACTIONS = (SendRequest, SendResponse, StartTimer, CancelTimer, DeliverResponse, DeliverRequest)


def events_for(data: bytes) -> list[Event]:
    req = request(data)
    out: list[Event] = [TransportError(), RequestReceived(req)]
    out += [TimerFired(t) for t in Timer]
    for status in (100, 180, 200, 202, 302, 486, 503):
        resp = response(req, status)
        out += [ResponseReceived(resp), TuSendResponse(resp)]
    out.append(RequestReceived(make_ack(req, response(req, 486))))
    other = request(REGISTER if data is INVITE else INVITE)
    out += [RequestReceived(other), TuSendResponse(response(other, 200))]
    return out


INVITE_EVENTS = events_for(INVITE)
REGISTER_EVENTS = events_for(REGISTER)

MACHINES: list[tuple[type[Transaction], bytes, type[enum.Enum]]] = [
    (InviteClientTransaction, INVITE, InviteClientState),
    (NonInviteClientTransaction, REGISTER, NonInviteClientState),
    (InviteServerTransaction, INVITE, InviteServerState),
    (NonInviteServerTransaction, REGISTER, NonInviteServerState),
]


@settings(max_examples=300, deadline=None)
@given(
    machine=st.sampled_from(MACHINES),
    over=st.sampled_from(["UDP", "TCP"]),
    picks=st.lists(st.integers(min_value=0, max_value=10**6), max_size=40),
)
def test_any_sequence_is_defined(
    machine: tuple[type[Transaction], bytes, type[enum.Enum]], over: str, picks: list[int]
) -> None:
    cls, data, states = machine
    events = INVITE_EVENTS if data is INVITE else REGISTER_EVENTS
    tx = cls(request(data, over=over), TimerConfig())
    now = 0.0
    ended = False
    for action in tx.start(now):
        assert isinstance(action, ACTIONS)
    for pick in picks:
        now += 0.1
        was_ended = ended
        try:
            actions: list[Action] = tx.handle(events[pick % len(events)], now)
        except TransactionError:
            actions = []
        assert isinstance(tx.state, states)
        for action in actions:
            assert isinstance(action, (*ACTIONS, Terminated))
            if isinstance(action, StartTimer):
                assert action.delay >= 0
                assert not ended
        if any(isinstance(a, Terminated) for a in actions):
            assert not ended, "terminated twice"
            assert isinstance(actions[-1], Terminated)
            ended = True
        assert ended == (tx.state.name == "TERMINATED")
        if was_ended:
            assert actions == [], "a terminated machine acts no more"
