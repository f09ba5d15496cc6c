"""Client transactions: RFC 3261 Figures 5 and 6, RFC 6026 Accepted, exact action lists."""

from __future__ import annotations

import pytest
from txnmessages import INVITE, REGISTER, request, response

from sipfarm.sip import parse
from sipfarm.transaction import (
    CancelTimer,
    DeliverResponse,
    InviteClientState,
    InviteClientTransaction,
    NonInviteClientState,
    NonInviteClientTransaction,
    ResponseReceived,
    SendRequest,
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


def invite_client(over: str = "UDP") -> InviteClientTransaction:
    return InviteClientTransaction(request(INVITE, over=over), CONFIG)


def test_invite_calling_retransmits_with_timer_a_doubling() -> None:
    """§17.1.1.2: A starts at T1 and doubles (no T2 cap for INVITE); B is 64*T1."""
    tx = invite_client()
    req = tx.request

    assert tx.start(0.0) == [SendRequest(req), StartTimer(Timer.A, 0.5), StartTimer(Timer.B, 32.0)]
    now, intervals = 0.0, []
    for _ in range(6):
        actions = tx.handle(TimerFired(Timer.A), now)
        assert actions[0] == SendRequest(req)
        start = actions[1]
        assert isinstance(start, StartTimer)
        assert start.timer is Timer.A
        intervals.append(start.delay)
    assert intervals == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    assert tx.state is InviteClientState.CALLING


def test_invite_timer_b_times_out() -> None:
    tx = invite_client()
    tx.start(0.0)

    assert tx.handle(TimerFired(Timer.B), 32.0) == [
        CancelTimer(Timer.A),
        Terminated(TerminationReason.TIMEOUT),
    ]
    assert tx.state is InviteClientState.TERMINATED
    assert tx.handle(TimerFired(Timer.A), 33.0) == []


def test_invite_over_tcp_starts_no_timer_a() -> None:
    tx = invite_client("TCP")

    assert tx.start(0.0) == [SendRequest(tx.request), StartTimer(Timer.B, 32.0)]


def test_invite_provisional_then_2xx_goes_to_accepted() -> None:
    """Figure 5 with RFC 6026 §7.2: 1xx -> Proceeding, 2xx -> Accepted (timer M)."""
    tx = invite_client()
    tx.start(0.0)
    ringing, ok = response(tx.request, 180), response(tx.request, 200)

    assert tx.handle(ResponseReceived(ringing), 0.1) == [
        CancelTimer(Timer.A),
        CancelTimer(Timer.B),
        DeliverResponse(ringing),
    ]
    assert tx.state is InviteClientState.PROCEEDING
    assert tx.handle(ResponseReceived(ringing), 0.2) == [DeliverResponse(ringing)]
    assert tx.handle(ResponseReceived(ok), 1.0) == [
        StartTimer(Timer.M, 32.0),
        DeliverResponse(ok),
    ]
    assert tx.state is InviteClientState.ACCEPTED
    assert tx.handle(ResponseReceived(ok), 2.0) == [DeliverResponse(ok)]  # TU re-ACKs
    assert tx.handle(ResponseReceived(ringing), 2.1) == []
    assert tx.handle(TransportError(), 2.2) == []
    assert tx.handle(TimerFired(Timer.M), 33.0) == [Terminated()]
    assert tx.state is InviteClientState.TERMINATED


def test_invite_2xx_in_calling() -> None:
    tx = invite_client()
    tx.start(0.0)
    ok = response(tx.request, 200)

    assert tx.handle(ResponseReceived(ok), 0.1) == [
        CancelTimer(Timer.A),
        CancelTimer(Timer.B),
        StartTimer(Timer.M, 32.0),
        DeliverResponse(ok),
    ]


def test_invite_non_2xx_sends_ack_and_resends_it_per_retransmission() -> None:
    """§17.1.1.2/§17.1.1.3: ACK on every final retransmission; D is 32 s over UDP."""
    tx = invite_client()
    tx.start(0.0)
    busy = response(tx.request, 486)
    ack = make_ack(tx.request, busy)

    assert tx.handle(ResponseReceived(busy), 0.1) == [
        CancelTimer(Timer.A),
        CancelTimer(Timer.B),
        SendRequest(ack),
        DeliverResponse(busy),
        StartTimer(Timer.D, 32.0),
    ]
    assert tx.state is InviteClientState.COMPLETED
    assert tx.handle(ResponseReceived(busy), 0.6) == [SendRequest(ack)]
    assert tx.handle(ResponseReceived(busy), 1.6) == [SendRequest(ack)]
    assert tx.handle(TimerFired(Timer.A), 1.7) == []  # stale
    assert tx.handle(TimerFired(Timer.D), 32.1) == [Terminated()]
    assert tx.handle(ResponseReceived(busy), 33.0) == []


def test_ack_fields_follow_17_1_1_3() -> None:
    tx = invite_client()
    busy = response(tx.request, 486)

    ack = parse(bytes(make_ack(tx.request, busy)))

    assert ack.start_line() == "ACK sip:bob@biloxi.example.com SIP/2.0"
    assert ack.via == (tx.request.via[0],)
    assert (ack.cseq.seq, ack.cseq.method) == (1, "ACK")
    assert ack.call_id == tx.request.call_id
    assert ack.from_ == tx.request.from_
    assert ack.to == busy.to
    assert ack.to.tag == "8321234356"
    assert ack.route == tx.request.route


def test_invite_non_2xx_over_tcp_ends_at_once() -> None:
    """Timer D is 0 over reliable transports (§17.1.1.2)."""
    tx = invite_client("TCP")
    tx.start(0.0)
    busy = response(tx.request, 486)

    assert tx.handle(ResponseReceived(busy), 0.1) == [
        CancelTimer(Timer.B),
        SendRequest(make_ack(tx.request, busy)),
        DeliverResponse(busy),
        Terminated(),
    ]


def test_invite_transport_error_tells_the_tu() -> None:
    """§17.1.4, §8.1.3.1."""
    tx = invite_client()
    tx.start(0.0)

    assert tx.handle(TransportError(), 0.0) == [
        CancelTimer(Timer.A),
        CancelTimer(Timer.B),
        Terminated(TerminationReason.TRANSPORT_ERROR),
    ]


def test_client_misuse_raises() -> None:
    tx = invite_client()
    with pytest.raises(TransactionError):
        tx.handle(TimerFired(Timer.A), 0.0)  # not started
    tx.start(0.0)
    with pytest.raises(TransactionError):
        tx.start(0.0)
    with pytest.raises(TransactionError):
        tx.handle(TuSendResponse(response(tx.request, 200)), 0.0)
    with pytest.raises(TransactionError):
        InviteClientTransaction(request(REGISTER), CONFIG)
    with pytest.raises(TransactionError):
        NonInviteClientTransaction(request(INVITE), CONFIG)


def register_client(over: str = "UDP") -> NonInviteClientTransaction:
    return NonInviteClientTransaction(request(REGISTER, over=over), CONFIG)


def test_non_invite_timer_e_doubles_to_t2_then_f() -> None:
    """§17.1.2.2: E = min(2E, T2) in Trying; F = 64*T1 times out."""
    tx = register_client()
    req = tx.request

    assert tx.start(0.0) == [SendRequest(req), StartTimer(Timer.E, 0.5), StartTimer(Timer.F, 32.0)]
    delays = []
    for _ in range(6):
        actions = tx.handle(TimerFired(Timer.E), 0.0)
        assert actions[0] == SendRequest(req)
        start = actions[1]
        assert isinstance(start, StartTimer)
        delays.append(start.delay)
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert tx.handle(TimerFired(Timer.F), 32.0) == [
        CancelTimer(Timer.E),
        Terminated(TerminationReason.TIMEOUT),
    ]
    assert tx.state is NonInviteClientState.TERMINATED


def test_non_invite_proceeding_retransmits_every_t2() -> None:
    tx = register_client()
    tx.start(0.0)
    trying = response(tx.request, 100)

    assert tx.handle(ResponseReceived(trying), 0.1) == [DeliverResponse(trying)]
    assert tx.state is NonInviteClientState.PROCEEDING
    assert tx.handle(TimerFired(Timer.E), 0.5) == [
        SendRequest(tx.request),
        StartTimer(Timer.E, 4.0),
    ]


def test_non_invite_final_completes_and_absorbs() -> None:
    tx = register_client()
    tx.start(0.0)
    ok = response(tx.request, 200)

    assert tx.handle(ResponseReceived(ok), 0.1) == [
        CancelTimer(Timer.E),
        CancelTimer(Timer.F),
        DeliverResponse(ok),
        StartTimer(Timer.K, 5.0),
    ]
    assert tx.state is NonInviteClientState.COMPLETED
    assert tx.handle(ResponseReceived(ok), 0.2) == []
    assert tx.handle(TimerFired(Timer.E), 0.5) == []
    assert tx.handle(TimerFired(Timer.K), 5.1) == [Terminated()]
    assert tx.state is NonInviteClientState.TERMINATED


def test_non_invite_over_tls_k_is_zero() -> None:
    tx = register_client("TLS")
    assert tx.start(0.0) == [SendRequest(tx.request), StartTimer(Timer.F, 32.0)]
    ok = response(tx.request, 200)

    assert tx.handle(ResponseReceived(ok), 0.1) == [
        CancelTimer(Timer.F),
        DeliverResponse(ok),
        Terminated(),
    ]


def test_non_invite_transport_error() -> None:
    tx = register_client()
    tx.start(0.0)

    assert tx.handle(TransportError(), 0.0) == [
        CancelTimer(Timer.E),
        CancelTimer(Timer.F),
        Terminated(TerminationReason.TRANSPORT_ERROR),
    ]


def test_timer_config_and_transport_reliability() -> None:
    assert TimerConfig().timeout == 32.0
    with pytest.raises(ValueError):
        TimerConfig(T1=5.0, T2=4.0)
    assert not invite_client("UDP").reliable
    assert all(invite_client(t).reliable for t in ("TCP", "TLS", "SCTP", "WS"))
    assert not InviteClientTransaction(request(INVITE, over="TCP"), CONFIG, reliable=False).reliable
