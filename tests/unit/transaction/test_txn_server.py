"""Server transactions: RFC 3261 Figures 7 and 8, RFC 6026 Accepted, exact action lists."""

from __future__ import annotations

import pytest
from txnmessages import INVITE, REGISTER, request, response

from sipfarm.sip import make_response
from sipfarm.transaction import (
    CancelTimer,
    DeliverRequest,
    InviteServerState,
    InviteServerTransaction,
    NonInviteServerState,
    NonInviteServerTransaction,
    RequestReceived,
    ResponseReceived,
    SendResponse,
    StartTimer,
    Terminated,
    TerminationReason,
    Timer,
    TimerConfig,
    TimerFired,
    TransactionError,
    TransportError,
    TuSendResponse,
    make_ack,
)

CONFIG = TimerConfig()


def invite_server(over: str = "UDP") -> InviteServerTransaction:
    tx = InviteServerTransaction(request(INVITE, over=over), CONFIG)
    assert tx.start(0.0) == [DeliverRequest(tx.request), StartTimer(Timer.TRYING, 0.2)]
    return tx


def test_100_trying_after_200_ms_and_on_retransmission() -> None:
    """§17.2.1: 100 Trying when the TU is silent for 200 ms; retransmissions get it again."""
    tx = invite_server()

    actions = tx.handle(TimerFired(Timer.TRYING), 0.2)

    assert len(actions) == 1
    sent = actions[0]
    assert isinstance(sent, SendResponse)
    assert sent.response.start_line() == "SIP/2.0 100 Trying"
    assert tx.handle(RequestReceived(tx.request), 0.5) == [sent]


def test_tu_provisional_cancels_trying_wait() -> None:
    tx = invite_server()
    ringing = response(tx.request, 180)

    assert tx.handle(TuSendResponse(ringing), 0.1) == [
        CancelTimer(Timer.TRYING),
        SendResponse(ringing),
    ]
    assert tx.handle(TimerFired(Timer.TRYING), 0.2) == []  # stale
    assert tx.handle(RequestReceived(tx.request), 0.5) == [SendResponse(ringing)]
    assert tx.state is InviteServerState.PROCEEDING


def test_non_2xx_retransmitted_with_g_doubling_to_t2_until_h() -> None:
    tx = invite_server()
    busy = response(tx.request, 486)

    assert tx.handle(TuSendResponse(busy), 0.1) == [
        CancelTimer(Timer.TRYING),
        SendResponse(busy),
        StartTimer(Timer.G, 0.5),
        StartTimer(Timer.H, 32.0),
    ]
    assert tx.state is InviteServerState.COMPLETED
    delays = []
    for _ in range(6):
        actions = tx.handle(TimerFired(Timer.G), 1.0)
        assert actions[0] == SendResponse(busy)
        start = actions[1]
        assert isinstance(start, StartTimer)
        delays.append(start.delay)
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert tx.handle(RequestReceived(tx.request), 2.0) == [SendResponse(busy)]
    assert tx.handle(TimerFired(Timer.H), 32.1) == [
        CancelTimer(Timer.G),
        Terminated(TerminationReason.TIMEOUT),
    ]
    assert tx.state is InviteServerState.TERMINATED


def test_ack_confirms_then_timer_i() -> None:
    tx = invite_server()
    busy = response(tx.request, 486)
    tx.handle(TuSendResponse(busy), 0.1)
    ack = make_ack(tx.request, busy)

    assert tx.handle(RequestReceived(ack), 0.2) == [
        CancelTimer(Timer.G),
        CancelTimer(Timer.H),
        StartTimer(Timer.I, 5.0),
    ]
    assert tx.state is InviteServerState.CONFIRMED
    assert tx.handle(RequestReceived(ack), 0.3) == []  # absorbed
    assert tx.handle(RequestReceived(tx.request), 0.4) == []
    assert tx.handle(TimerFired(Timer.I), 5.2) == [Terminated()]
    assert tx.state is InviteServerState.TERMINATED


def test_reliable_invite_server_i_is_zero_and_no_g() -> None:
    tx = invite_server("TCP")
    busy = response(tx.request, 486)

    assert tx.handle(TuSendResponse(busy), 0.1) == [
        CancelTimer(Timer.TRYING),
        SendResponse(busy),
        StartTimer(Timer.H, 32.0),
    ]
    assert tx.handle(RequestReceived(make_ack(tx.request, busy)), 0.2) == [
        CancelTimer(Timer.H),
        Terminated(),
    ]


def test_2xx_goes_to_accepted_rfc6026() -> None:
    """RFC 6026 §7.1: Accepted absorbs INVITEs, sends the TU's 2xx, ends with timer L."""
    tx = invite_server()
    ok = response(tx.request, 200)

    assert tx.handle(TuSendResponse(ok), 0.1) == [
        CancelTimer(Timer.TRYING),
        SendResponse(ok),
        StartTimer(Timer.L, 32.0),
    ]
    assert tx.state is InviteServerState.ACCEPTED
    assert tx.handle(RequestReceived(tx.request), 0.5) == []
    assert tx.handle(TuSendResponse(ok), 0.6) == [SendResponse(ok)]
    assert tx.handle(TransportError(), 0.7) == []
    with pytest.raises(TransactionError):
        tx.handle(TuSendResponse(response(tx.request, 486)), 0.8)
    assert tx.handle(TimerFired(Timer.L), 32.1) == [Terminated()]
    assert tx.state is InviteServerState.TERMINATED


def test_invite_server_transport_error() -> None:
    tx = invite_server()

    assert tx.handle(TransportError(), 0.1) == [
        CancelTimer(Timer.TRYING),
        Terminated(TerminationReason.TRANSPORT_ERROR),
    ]


def test_server_misuse_raises() -> None:
    tx = invite_server()
    tx.handle(TuSendResponse(response(tx.request, 486)), 0.1)
    with pytest.raises(TransactionError):
        tx.handle(TuSendResponse(response(tx.request, 200)), 0.2)  # a second final
    with pytest.raises(TransactionError):
        tx.handle(ResponseReceived(response(tx.request, 200)), 0.2)
    register = request(REGISTER)
    with pytest.raises(TransactionError):
        tx.handle(TuSendResponse(make_response(register, 200)), 0.2)  # another request's
    with pytest.raises(TransactionError):
        InviteServerTransaction(register, CONFIG)
    with pytest.raises(TransactionError):
        NonInviteServerTransaction(request(INVITE), CONFIG)


def register_server(over: str = "UDP") -> NonInviteServerTransaction:
    tx = NonInviteServerTransaction(request(REGISTER, over=over), CONFIG)
    assert tx.start(0.0) == [DeliverRequest(tx.request)]
    return tx


def test_non_invite_server_figure_8() -> None:
    tx = register_server()
    trying, ok = response(tx.request, 100), response(tx.request, 200)

    assert tx.handle(RequestReceived(tx.request), 0.5) == []  # Trying: absorbed
    assert tx.handle(TransportError(), 0.5) == []  # nothing sent yet
    assert tx.handle(TuSendResponse(trying), 0.6) == [SendResponse(trying)]
    assert tx.state is NonInviteServerState.PROCEEDING
    assert tx.handle(RequestReceived(tx.request), 1.0) == [SendResponse(trying)]
    assert tx.handle(TuSendResponse(ok), 1.1) == [SendResponse(ok), StartTimer(Timer.J, 32.0)]
    assert tx.state is NonInviteServerState.COMPLETED
    assert tx.handle(RequestReceived(tx.request), 2.0) == [SendResponse(ok)]
    with pytest.raises(TransactionError):
        tx.handle(TuSendResponse(ok), 2.1)
    assert tx.handle(TimerFired(Timer.J), 33.1) == [Terminated()]
    assert tx.state is NonInviteServerState.TERMINATED
    assert tx.handle(RequestReceived(tx.request), 34.0) == []


def test_non_invite_server_reliable_j_is_zero() -> None:
    tx = register_server("TCP")
    ok = response(tx.request, 200)

    assert tx.handle(TuSendResponse(ok), 0.1) == [SendResponse(ok), Terminated()]


def test_non_invite_server_transport_error_in_completed() -> None:
    tx = register_server()
    tx.handle(TuSendResponse(response(tx.request, 200)), 0.1)

    assert tx.handle(TransportError(), 0.2) == [
        CancelTimer(Timer.J),
        Terminated(TerminationReason.TRANSPORT_ERROR),
    ]
