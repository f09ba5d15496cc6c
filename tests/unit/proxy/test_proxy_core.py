"""The member core as a stateful proxy (RFC 3261 §16), on literal messages (RFC 3665 §3 shapes)."""

from __future__ import annotations

import pytest
from corepair import (
    CALLEE,
    CALLEE2,
    CALLER,
    ME,
    Pair,
    make_core,
    msg,
    register,
    request,
    status,
    wire,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from sipfarm.actions import Drop, Send, Source
from sipfarm.ownership import branch_prefix
from sipfarm.sip import Response

TRUSTED = ("198.51.100.0/24",)

#: The caller's CANCEL of invite() (§9.1: same branch, same CSeq number).
CANCEL = """
    CANCEL sip:bob@example.com SIP/2.0
    Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKinv1
    Max-Forwards: 70
    From: Alice <sip:alice@example.com>;tag=a1
    To: Bob <sip:bob@example.com>
    Call-ID: call-1@198.51.100.1
    CSeq: 1 CANCEL
    """

#: The caller's ACK of the 200 of invite(), routed back through the member.
ACK = """
    ACK sip:bob@198.51.100.2:5070 SIP/2.0
    Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKack1
    Route: <sip:192.0.2.10:5060;lr;member=m1>
    Max-Forwards: 70
    From: Alice <sip:alice@example.com>;tag=a1
    To: Bob <sip:bob@example.com>;tag=b1
    Call-ID: call-1@198.51.100.1
    CSeq: 1 ACK
    """


def invite(*, branch: str = "z9hG4bKinv1", to: str = "bob", extra: str = "", mf: int = 70) -> str:
    return f"""
        INVITE sip:{to}@example.com SIP/2.0
        Via: SIP/2.0/UDP 198.51.100.1:5060;branch={branch}
        Max-Forwards: {mf}
        From: Alice <sip:alice@example.com>;tag=a1
        To: Bob <sip:{to}@example.com>
        Call-ID: call-1@198.51.100.1
        CSeq: 1 INVITE
        Contact: <sip:alice@198.51.100.1:5060>
        Content-Type: application/sdp{extra}

        v=0
        o=alice 1 1 IN IP4 198.51.100.1
        s=-
        c=IN IP4 198.51.100.1
        t=0 0
        m=audio 4000 RTP/AVP 0
        """


def answer_to(forwarded: Send, code: int, *, tag: str = "b1", rr: bool = True) -> bytes:
    """The callee's response to what the proxy forwarded: Via, RR, From, To(+tag), Call-ID, CSeq."""
    req = request(forwarded)
    h = req.headers
    lines = [f"SIP/2.0 {code} {'OK' if code == 200 else 'Whatever'}"]
    lines += [f"Via: {v}" for v in h.get_all("via")]
    if rr:
        lines += [f"Record-Route: {v}" for v in h.get_all("record-route")]
    lines += [f"From: {h.get('from')}", f"To: {h.get('to')};tag={tag}"]
    lines += [f"Call-ID: {req.call_id}", f"CSeq: {h.get('cseq')}"]
    if code == 200:
        lines.append(f"Contact: <sip:bob@{forwarded.address[0]}:{forwarded.address[1]}>")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def from_callee(pair: Pair, data: bytes, address: tuple[str, int] = CALLEE) -> list[Send]:
    return pair.feed_bytes(data, Source("UDP", *address))


def registered(*contacts: str, trusted: tuple[str, ...] = TRUSTED) -> Pair:
    pair = make_core(trusted=trusted)
    for c in contacts:
        register(pair, "bob", c)
    return pair


def test_invite_is_forwarded_to_the_binding_with_via_rr_and_max_forwards() -> None:
    pair = registered("sip:bob@198.51.100.2:5070")
    out = pair.feed(invite())
    assert [status(out[0])] == [100]
    assert out[0].address == ("198.51.100.1", 5060)
    fwd = request(out[1])
    assert out[1].address == CALLEE and out[1].transport == "UDP"
    assert str(fwd.uri) == "sip:bob@198.51.100.2:5070"
    assert fwd.via[0].sent_by == f"{ME[0]}:{ME[1]}"
    assert (fwd.via[0].branch or "").startswith("z9hG4bK.m1.")
    assert fwd.via[1].branch == "z9hG4bKinv1"
    assert fwd.max_forwards == 69
    assert fwd.headers.get("record-route") == "<sip:192.0.2.10:5060;lr;member=m1>"
    assert fwd.body.startswith(b"v=0")


def test_a_whole_call_180_200_ack_bye() -> None:
    pair = registered("sip:bob@198.51.100.2:5070")
    fwd = pair.feed(invite())[1]
    (ringing,) = from_callee(pair, answer_to(fwd, 180))
    assert status(ringing) == 180 and ringing.address == ("198.51.100.1", 5060)
    assert len(msg(ringing).via) == 1
    (ok,) = from_callee(pair, answer_to(fwd, 200))
    assert status(ok) == 200
    assert msg(ok).headers.get("record-route") == "<sip:192.0.2.10:5060;lr;member=m1>"
    ack = ACK
    (acked,) = pair.feed(ack)
    a = request(acked)
    assert a.method == "ACK" and acked.address == CALLEE
    assert "route" not in a.headers and len(a.via) == 2
    bye = ack.replace("ACK sip", "BYE sip").replace("1 ACK", "2 BYE").replace("ack1", "bye1")
    (byed,) = pair.feed(bye)
    assert request(byed).method == "BYE" and byed.address == CALLEE
    (bye_ok,) = from_callee(pair, answer_to(byed, 200))
    assert status(bye_ok) == 200 and bye_ok.address == ("198.51.100.1", 5060)


def test_retransmitted_invite_is_absorbed_and_gets_the_last_response() -> None:
    pair = registered("sip:bob@198.51.100.2:5070")
    fwd = pair.feed(invite())[1]
    from_callee(pair, answer_to(fwd, 180))
    (again,) = pair.feed(invite())
    assert status(again) == 180


def test_parallel_fork_2xx_wins_and_the_other_branch_is_cancelled() -> None:
    pair = registered("sip:bob@198.51.100.2:5070", "sip:bob@198.51.100.3:5070")
    out = pair.feed(invite())
    branches = {s.address: s for s in out[1:]}
    assert set(branches) == {CALLEE, CALLEE2}
    from_callee(pair, answer_to(branches[CALLEE2], 180, tag="b2"), CALLEE2)
    out = from_callee(pair, answer_to(branches[CALLEE], 200))
    assert [status(out[0])] == [200]
    cancel = [s for s in out[1:] if request(s).method == "CANCEL"]
    assert [s.address for s in cancel] == [CALLEE2]
    c = request(cancel[0])
    assert c.via[0].branch == request(branches[CALLEE2]).via[0].branch  # §9.1


def test_cancel_waits_for_a_provisional_before_it_goes_downstream() -> None:
    pair = registered("sip:bob@198.51.100.2:5070")
    fwd = pair.feed(invite())[1]
    (ok,) = pair.feed(CANCEL)
    assert status(ok) == 200 and msg(ok).cseq.method == "CANCEL"
    out = from_callee(pair, answer_to(fwd, 180))
    assert [request(s).method for s in out] == ["CANCEL"]  # the 180 is not passed up
    out = from_callee(pair, answer_to(fwd, 487))
    down = [request(s).method for s in out if not isinstance(msg(s), Response)]
    up = [status(s) for s in out if isinstance(msg(s), Response)]
    assert down == ["ACK"] and up == [487]


def test_cancel_without_a_transaction_is_481() -> None:
    pair = make_core()
    out = pair.feed(
        """
        CANCEL sip:bob@example.com SIP/2.0
        Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKnothing
        Max-Forwards: 70
        From: <sip:alice@example.com>;tag=a1
        To: <sip:bob@example.com>
        Call-ID: nothing@198.51.100.1
        CSeq: 1 CANCEL
        """
    )
    assert [status(s) for s in out] == [481]


@pytest.mark.parametrize(
    ("codes", "best"),
    [((486, 404), 486), ((404, 486), 404), ((503, 503), 500), ((486, 603), 603), ((407, 500), 407)],
)
def test_best_response_of_two_failed_branches(codes: tuple[int, int], best: int) -> None:
    pair = registered("sip:bob@198.51.100.2:5070", "sip:bob@198.51.100.3:5070")
    out = pair.feed(invite())
    branches = {s.address: s for s in out[1:]}
    first = from_callee(pair, answer_to(branches[CALLEE], codes[0]))
    assert all(not isinstance(msg(s), Response) for s in first)  # only the ACK downstream
    second = from_callee(pair, answer_to(branches[CALLEE2], codes[1], tag="b2"), CALLEE2)
    assert [status(s) for s in second if isinstance(msg(s), Response)] == [best]


def test_no_answer_at_all_is_408_after_timer_b() -> None:
    pair = registered("sip:bob@198.51.100.2:5070")
    pair.feed(invite())
    out = pair.advance(40.0)
    finals = [status(s) for s in out if isinstance(msg(s), Response)]
    assert finals[:1] == [408]
    retrans = [s for s in out if not isinstance(msg(s), Response)]
    assert retrans and all(request(s).method == "INVITE" for s in retrans)


def test_timer_c_cancels_a_ringing_branch() -> None:
    pair = registered("sip:bob@198.51.100.2:5070")
    fwd = pair.feed(invite())[1]
    from_callee(pair, answer_to(fwd, 180))
    out = pair.advance(181.0)
    assert [request(s).method for s in out if not isinstance(msg(s), Response)][:1] == ["CANCEL"]
    out = from_callee(pair, answer_to(fwd, 487))
    assert [status(s) for s in out if isinstance(msg(s), Response)] == [487]


@pytest.mark.parametrize(
    ("extra", "to", "code"),
    [("", "carol", 404), ("", "alice", 480)],
)
def test_unknown_user_404_and_unregistered_user_480(extra: str, to: str, code: int) -> None:
    pair = registered("sip:bob@198.51.100.2:5070")
    out = pair.feed(invite(to=to, extra=extra))
    assert [status(s) for s in out] == [code]


def test_max_forwards_zero_is_483() -> None:
    pair = registered("sip:bob@198.51.100.2:5070")
    assert [status(s) for s in pair.feed(invite(mf=0))] == [483]


def test_a_request_that_comes_back_unchanged_is_a_loop_482() -> None:
    pair = registered("sip:bob@198.51.100.2:5070")
    fwd = request(pair.feed(invite())[1])
    looped = bytes(fwd).replace(b"sip:bob@198.51.100.2:5070", b"sip:bob@example.com", 1)
    out = pair.feed_bytes(looped, Source("UDP", *CALLEE))
    assert [status(s) for s in out] == [482]


def test_a_spiral_is_served() -> None:
    pair = registered("sip:bob@198.51.100.2:5070")
    fwd = request(pair.feed(invite())[1])
    # the same request back with another Request-URI: a spiral, not a loop (§16.3 step 4)
    spiral = bytes(fwd).replace(b"sip:bob@198.51.100.2:5070", b"sip:bob@example.com;x=1", 1)
    out = pair.feed_bytes(spiral, Source("UDP", *CALLEE))
    assert status(out[0]) == 100 and request(out[1]).method == "INVITE"


def test_untrusted_local_caller_is_challenged_407_then_served() -> None:
    pair = make_core()
    register(pair, "bob", "sip:bob@198.51.100.2:5070")
    (challenge,) = pair.feed(invite())
    assert status(challenge) == 407
    assert "Proxy-Authenticate" in msg(challenge).headers
    ack = """
        ACK sip:bob@example.com SIP/2.0
        Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKinv1
        Max-Forwards: 70
        From: Alice <sip:alice@example.com>;tag=a1
        To: Bob <sip:bob@example.com>;tag=TAG
        Call-ID: call-1@198.51.100.1
        CSeq: 1 ACK
        """.replace("TAG", msg(challenge).to.tag or "")
    assert pair.feed(ack) == []  # the ACK of our own 407 stops here


def test_caller_from_another_domain_may_call_local_users_but_not_relay() -> None:
    pair = make_core()
    register(pair, "bob", "sip:bob@198.51.100.2:5070")
    inbound = invite().replace("sip:alice@example.com", "sip:carol@example.net")
    out = pair.feed(inbound)
    assert status(out[0]) == 100 and request(out[1]).method == "INVITE"
    relay = inbound.replace("sip:bob@example.com", "sip:dave@203.0.113.5").replace("inv1", "inv2")
    assert [status(s) for s in pair.feed(relay)] == [403]


def test_503_from_the_only_branch_becomes_500() -> None:
    pair = registered("sip:bob@198.51.100.2:5070")
    fwd = pair.feed(invite())[1]
    out = from_callee(pair, answer_to(fwd, 503))
    assert [status(s) for s in out if isinstance(msg(s), Response)] == [500]


def test_tcp_contact_is_reached_over_its_connection_and_430_or_480_when_gone() -> None:
    pair = make_core(trusted=TRUSTED)
    tcp = Source("TCP", "198.51.100.2", 40123)
    reg = """
        REGISTER sip:example.com SIP/2.0
        Via: SIP/2.0/TCP 198.51.100.2:5070;branch=z9hG4bKtcpreg
        Max-Forwards: 70
        From: <sip:bob@example.com>;tag=t1
        To: <sip:bob@example.com>
        Call-ID: tcpreg
        CSeq: 1 REGISTER
        Contact: <sip:bob@198.51.100.2:5070;transport=tcp>
        Expires: 600
        """
    (ok,) = pair.feed(reg, tcp)
    assert status(ok) == 200 and ok.transport == "TCP" and ok.address == ("198.51.100.2", 40123)
    out = pair.feed(invite())
    fwd = out[1]
    assert fwd.transport == "TCP" and fwd.address == ("198.51.100.2", 40123)
    rr = request(fwd).headers.get_all("record-route")
    assert rr == [
        "<sip:192.0.2.10:5060;transport=tcp;lr;member=m1>",
        "<sip:192.0.2.10:5060;lr;member=m1>",
    ]
    failed = pair.core.transport_failed(fwd.ref, pair.now)
    assert [status(s) for s in failed] == [480]  # the caller did not say Supported: outbound


def test_garbage_from_a_callee_is_not_a_crash() -> None:
    pair = registered("sip:bob@198.51.100.2:5070")
    pair.feed(invite())
    dropped = pair.core.receive(b"SIP/2.0 200 OK\r\n\r\n", Source("UDP", *CALLEE), pair.now)
    assert isinstance(dropped, Drop) and dropped.reason == "garbage"


EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["b0", "b1"]),
        st.sampled_from([180, 183, 200, 404, 486, 503, 603, "cancel", "wait"]),
    ),
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(EVENTS)
def test_any_sequence_of_branch_answers_gives_one_final_upstream(events: list) -> None:  # type: ignore[type-arg]
    """Whatever the branches answer and whenever, upstream gets a final answer, one non-2xx
    final at most, nothing but 2xx after a 2xx, and nothing raises (§16.7)."""
    pair = registered("sip:bob@198.51.100.2:5070", "sip:bob@198.51.100.3:5070")
    out = pair.feed(invite())
    branches = {"b0": out[1], "b1": out[2]}
    upstream: list[int] = []
    for name, what in events:
        fwd = branches[name]
        if what == "cancel":
            sent = pair.feed(CANCEL)
        elif what == "wait":
            sent = pair.advance(100.0)
        else:
            sent = from_callee(pair, answer_to(fwd, int(what), tag=name), fwd.address)
        for s in sent:
            m = msg(s)
            if isinstance(m, Response) and m.cseq.method == "INVITE" and s.address == CALLER[1:]:
                upstream.append(m.status)
    sent = pair.advance(400.0)
    upstream += [
        m.status for s in sent if isinstance(m := msg(s), Response) and m.cseq.method == "INVITE"
    ]
    finals = [c for c in upstream if c >= 200]
    non2xx = [c for c in finals if c >= 300]
    assert len(set(non2xx)) <= 1, upstream  # one final non-2xx (retransmitted maybe)
    assert finals, upstream  # every INVITE gets its final answer in the end
    ok = [i for i, c in enumerate(finals) if c < 300]
    # nothing but 2xx after a 2xx; except that a 2xx arriving after its branch's
    # transaction timed out is forwarded without one (§16.7 step 1) and the context may
    # still end with its best final answer (the caller's Accepted state ignores it)
    if ok and not pair.core.counters["2xx_forwarded_stateless"]:
        assert all(c < 300 for c in finals[ok[0] :]), upstream


def test_overloaded_member_sheds_new_requests_but_serves_calls_under_way() -> None:
    """RFC 3261 §21.5.4: 503 + Retry-After to new work; dialogs and retransmissions go on."""
    pair = registered("sip:bob@198.51.100.2:5070")
    fwd = pair.feed(invite())[1]
    from_callee(pair, answer_to(fwd, 200))
    pair.core.overloaded = True
    assert pair.feed(invite()) == []  # a retransmission: absorbed (RFC 6026 Accepted), no 503
    other = invite(branch="z9hG4bKinv2").replace("call-1@", "call-2@")
    (shed,) = pair.feed(other)
    assert status(shed) == 503 and msg(shed).headers.get("retry-after") == "5"
    bye = """
        BYE sip:bob@198.51.100.2:5070 SIP/2.0
        Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKbye1
        Route: <sip:192.0.2.10:5060;lr;member=m1>
        Max-Forwards: 70
        From: Alice <sip:alice@example.com>;tag=a1
        To: Bob <sip:bob@example.com>;tag=b1
        Call-ID: call-1@198.51.100.1
        CSeq: 2 BYE
        """
    (byed,) = pair.feed(bye)
    assert request(byed).method == "BYE" and byed.address == CALLEE
    pair.core.overloaded = False
    out = pair.feed(other)
    assert status(out[0]) == 100


def test_challenges_of_every_branch_go_up_together() -> None:
    """§16.7 step 7: two callees challenge; the caller gets one 401 with both challenges."""
    pair = registered("sip:bob@198.51.100.2:5070", "sip:bob@198.51.100.3:5070")
    out = pair.feed(invite())
    branches = {s.address: s for s in out[1:]}

    def challenge(fwd: Send, realm: str, tag: str) -> bytes:
        data = answer_to(fwd, 401, tag=tag)
        line = f'WWW-Authenticate: Digest realm="{realm}", nonce="n-{realm}"\r\n'.encode()
        return data.replace(b"Content-Length: 0", line + b"Content-Length: 0")

    from_callee(pair, challenge(branches[CALLEE], "a.example", "b1"))
    up = from_callee(pair, challenge(branches[CALLEE2], "b.example", "b2"), CALLEE2)
    (final,) = [s for s in up if isinstance(msg(s), Response)]
    assert status(final) == 401
    realms = msg(final).headers.get_all("www-authenticate")
    assert sorted(realms) == [
        'Digest realm="a.example", nonce="n-a.example"',
        'Digest realm="b.example", nonce="n-b.example"',
    ]


def test_a_call_is_at_work_until_answered_then_only_absorbs_retransmissions() -> None:
    """What a drained member waits for before it says idle (TransactionLayer.active)."""
    pair = registered("sip:bob@198.51.100.2:5070")
    fwd = pair.feed(invite())[1]
    assert pair.core.layer.active() == 2  # the caller's INVITE and ours to bob
    from_callee(pair, answer_to(fwd, 180))
    assert pair.core.layer.active() == 2
    from_callee(pair, answer_to(fwd, 200))
    assert (
        pair.core.layer.active() == 0
    )  # both Accepted (RFC 6026): done but for 2xx retransmissions
    assert len(pair.core.layer) == 2


def test_a_dialog_through_the_member_is_counted_until_its_bye() -> None:
    """A drained member is idle once no dialog it record-routed is up."""
    pair = registered("sip:bob@198.51.100.2:5070")
    fwd = pair.feed(invite())[1]
    from_callee(pair, answer_to(fwd, 200))
    assert len(pair.core.dialogs) == 1
    pair.feed(ACK)
    bye = ACK.replace("ACK sip", "BYE sip").replace("1 ACK", "2 BYE").replace("ack1", "bye1")
    (byed,) = pair.feed(bye)
    from_callee(pair, answer_to(byed, 200))
    assert pair.core.dialogs == {}


def test_a_late_2xx_retransmission_does_not_reopen_a_closed_dialog() -> None:
    pair = registered("sip:bob@198.51.100.2:5070")
    fwd = pair.feed(invite())[1]
    ok = answer_to(fwd, 200)
    from_callee(pair, ok)
    pair.feed(ACK)
    bye = ACK.replace("ACK sip", "BYE sip").replace("1 ACK", "2 BYE").replace("ack1", "bye1")
    (byed,) = pair.feed(bye)
    from_callee(pair, answer_to(byed, 200))
    from_callee(pair, ok)  # the INVITE's 2xx again, absorbed by the Accepted transaction
    assert pair.core.dialogs == {}


def test_an_in_dialog_request_gets_the_same_branch_from_any_member() -> None:
    """The branch of a forwarded BYE is made from the BYE's own and the record-routing
    member's token, so a member that takes over a dead one's retransmission sends the
    very branch the dead one sent (the callee sees a retransmission, not a new BYE)."""
    bye = ACK.replace("ACK sip", "BYE sip").replace("1 ACK", "2 BYE").replace("ack1", "bye1")
    bye = bye.replace("member=m1", "member=m7")  # m7 record-routed the dialog
    first = request(registered("sip:bob@198.51.100.2:5070").feed(bye)[0])
    again = request(registered("sip:bob@198.51.100.2:5070").feed(bye)[0])
    assert first.via[0].branch == again.via[0].branch
    assert first.via[0].branch.startswith(branch_prefix("m7"))


def test_a_new_invite_served_for_its_owner_is_the_one_the_owner_sent() -> None:
    """m1 forwarded the INVITE and died; the caller's retransmission reaches m2, which
    serves it for m1 (``acting``): byte for byte the request m1 sent (its branch and
    Record-Route name m1), so the callee sees a retransmission, not a second INVITE of
    the call (RFC 3261 §8.2.2.2 would answer that 482; a SIPp UAS aborts the call).
    Served for itself, m2 sends its own."""
    m1 = make_core(trusted=TRUSTED, token="m1")
    m2 = make_core(trusted=TRUSTED, token="m2")
    for pair in (m1, m2):
        register(pair, "bob", "sip:bob@198.51.100.2:5070")
    sent = m1.feed(invite())[1]
    bytes_again = wire(invite())
    served_for = m2.core.receive(bytes_again, CALLER, m2.now, acting="m1")
    assert isinstance(served_for, list) and status(served_for[0]) == 100
    assert served_for[1].data == sent.data and served_for[1].address == sent.address
    assert request(sent).via[0].branch.startswith(branch_prefix("m1"))
    assert request(sent).headers.get("record-route").endswith(";lr;member=m1>")
    # the callee's 200 reaches m2's transaction; the dialog is m1's (its Record-Route),
    # so m2, drained later, does not wait for a BYE that goes to m1
    (up,) = from_callee(m2, answer_to(served_for[1], 200))
    assert status(up) == 200 and up.address == ("198.51.100.1", 5060)
    assert m2.core.dialogs == {}
    from_callee(m1, answer_to(sent, 200))
    assert list(m1.core.dialogs) == ["call-1@198.51.100.1"]
    own = make_core(trusted=TRUSTED, token="m2")
    register(own, "bob", "sip:bob@198.51.100.2:5070")
    mine = request(own.feed(invite())[1])
    assert mine.via[0].branch.startswith(branch_prefix("m2"))
    assert mine.headers.get("record-route").endswith(";lr;member=m2>")
    # another caller's INVITE (another branch): another branch downstream
    other = request(own.feed(invite(branch="z9hG4bKinv2").replace("call-1", "call-2"))[1])
    assert other.via[0].branch != mine.via[0].branch


def test_a_cleared_layer_sends_nothing_more() -> None:
    """What a member frozen past its lease does with its transactions: drops them."""
    pair = registered("sip:bob@198.51.100.2:5070")
    pair.feed(invite())
    assert pair.core.layer.clear() == 2
    assert pair.advance(64.0) == [] and len(pair.core.layer) == 0


@pytest.mark.parametrize(
    ("token", "sent_by", "forwarded"),
    [
        ("m1", "192.0.2.10:5060", True),  # ours, after our transaction ended
        ("m7", "192.0.2.10:5060", True),  # a member that died with its INVITE
        ("m7", "203.0.113.9:5060", False),  # another proxy's look-alike
    ],
)
def test_a_2xx_without_its_transaction_goes_on_statelessly_once(
    token: str, sent_by: str, forwarded: bool
) -> None:
    """A 2xx of ours whose transaction ended, or of a member that died with the INVITE
    (the router places that one on the Call-ID's owner), goes on to the caller
    (§16.7 step 5, §16.11), and the caller's late retransmission of the INVITE must not
    ring the callee a second time.  A branch of the same shape under another proxy's
    address is not ours to forward."""
    pair = registered("sip:bob@198.51.100.2:5070")
    ok = wire(
        f"""
        SIP/2.0 200 OK
        Via: SIP/2.0/UDP {sent_by};branch=z9hG4bK.{token}.0123456789abcdef
        Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKinv1
        From: Alice <sip:alice@example.com>;tag=a1
        To: Bob <sip:bob@example.com>;tag=b1
        Call-ID: call-1@198.51.100.1
        CSeq: 1 INVITE
        Contact: <sip:bob@198.51.100.2:5070>
        Content-Length: 0
        """
    )
    out = pair.feed_bytes(ok, Source("UDP", "198.51.100.2", 5070))
    if not forwarded:
        assert out == [] and pair.core.counters["stray_response"] == 1
        return
    (up,) = out
    assert status(up) == 200 and up.address == ("198.51.100.1", 5060)
    assert f"z9hG4bK.{token}.".encode() not in up.data  # the member's Via is stripped
    assert pair.feed(invite()) == []
    assert pair.core.counters["invite_after_2xx_absorbed"] == 1
