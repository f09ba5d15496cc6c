"""sipfarm/router.py: which member handles a packet, on literal messages read by peek()."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.ring import Ring
from sipfarm.ownership import (
    branch_prefix,
    is_stateless_tag,
    is_token,
    stateless_tag,
    tag_prefix,
    token_of_branch,
    token_of_tag,
    token_of_uri,
)
from sipfarm.router import HANDOFF, INVITE_HANDOFF, View, place
from sipfarm.sip import peek

FARM = frozenset({b"198.51.100.80:5060"})
VIEW = View(me="m1", live=frozenset({"m1", "m2", "m3"}), ring=Ring(["m1", "m2", "m3"]), farm=FARM)


def msg(start: str, *headers: str) -> bytes:
    base = {
        "via": "Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bK-ua-1",
        "from": "From: <sip:alice@example.com>;tag=a1",
        "to": "To: <sip:bob@example.com>",
        "call-id": "Call-ID: call-1@198.51.100.1",
        "cseq": "CSeq: 1 INVITE",
    }
    for h in headers:
        base[h.split(":", 1)[0].lower()] = h
    lines = [start, *base.values(), "Max-Forwards: 70", "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_ownership_marks_read_back() -> None:
    assert token_of_branch(branch_prefix("m2") + "3f2a9c1e00ab") == "m2"
    assert token_of_branch("z9hG4bK-11158-1-0") is None  # SIPp's
    assert token_of_branch("z9hG4bKm2abc") is None
    assert token_of_tag(tag_prefix("m3") + "0a1b2c3d") == "m3"
    assert token_of_tag("11158SIPpTag01") is None
    assert token_of_uri(b"sip:198.51.100.80:5060;lr;member=m2") == "m2"
    assert token_of_uri(b"sip:bob@example.com;members=m2") is None
    assert is_token("a1b2c3") and not is_token("A-1") and not is_token("x" * 17)


def test_a_response_goes_to_the_member_in_its_top_via() -> None:
    response = msg(
        "SIP/2.0 180 Ringing",
        f"Via: SIP/2.0/UDP 198.51.100.80:5060;branch={branch_prefix('m2')}0011223344556677",
    )
    assert place(peek(response), VIEW, 0.0) == "m2"
    mine = response.replace(b".m2.", b".m1.")
    assert place(peek(mine), VIEW, 0.0) is None


def test_a_response_whose_top_via_is_not_the_farms_stays() -> None:
    # a UA's own branch that happens to look like ours (Linphone writes z9hG4bK.<random>.)
    response = msg("SIP/2.0 200 OK", "Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK.m2.xyz")
    assert place(peek(response), VIEW, 0.0) is None


def test_a_response_for_a_dead_member_goes_to_its_successor() -> None:
    """m9 is gone: its transactions went over to the Call-ID's owner (rule 4)."""
    response = msg(
        "SIP/2.0 200 OK",
        f"Via: SIP/2.0/UDP 198.51.100.80:5060;branch={branch_prefix('m9')}0011223344556677",
    )
    p = peek(response)
    owner = VIEW.ring.owner(p.call_id or b"")
    assert place(p, VIEW, 0.0) == (None if owner == VIEW.me else owner)


def test_in_dialog_requests_follow_the_route_token() -> None:
    bye = msg(
        "BYE sip:bob@198.51.100.2:5070 SIP/2.0",
        "Route: <sip:198.51.100.80:5060;lr;member=m3>",
        "To: <sip:bob@example.com>;tag=b1",
        "CSeq: 2 BYE",
    )
    assert place(peek(bye), VIEW, 0.0) == "m3"


def test_a_request_uri_naming_a_member_goes_there() -> None:
    request = msg("NOTIFY sip:198.51.100.80:5060;member=m2 SIP/2.0", "CSeq: 3 NOTIFY")
    assert place(peek(request), VIEW, 0.0) == "m2"


def test_the_ack_of_a_members_own_answer_goes_to_it() -> None:
    ack = msg(
        "ACK sip:bob@example.com SIP/2.0",
        f"To: <sip:bob@example.com>;tag={tag_prefix('m2')}0a1b2c3d",
        "CSeq: 1 ACK",
    )
    assert place(peek(ack), VIEW, 0.0) == "m2"


def test_stateless_and_stateful_tags_are_told_apart() -> None:
    tag = stateless_tag("m2", 0x0A1B2C3D)
    assert tag == "m2-s0a1b2c3d" and token_of_tag(tag) == "m2"
    assert is_stateless_tag(tag) and is_stateless_tag(tag.encode())
    assert not is_stateless_tag(tag_prefix("m2") + "0a1b2c3d")  # the proxy's own tags
    for other in (None, "", "m2-s0a1b2c3", "m2-s0a1b2c3d9", "M2-s0a1b2c3d", "-s0a1b2c3d"):
        assert not is_stateless_tag(other)


def test_the_ack_of_a_stateless_answer_is_absorbed_where_it_lands() -> None:
    """No transaction waits for it (a challenge answered where its request landed)."""
    for token in ("m2", "m3", "m9"):
        ack = msg(
            "ACK sip:bob@example.com SIP/2.0",
            f"To: <sip:bob@example.com>;tag={stateless_tag(token, 0xDEADBEEF)}",
            "CSeq: 1 ACK",
        )
        assert place(peek(ack), VIEW, 0.0) is None


def test_the_ack_of_a_2xx_is_forwarded_where_it_lands() -> None:
    """End to end (RFC 3261 §13.2.2.4): no transaction of the route's member takes it."""
    for token in ("m3", "m9"):  # a live member's route, a dead one's
        ack = msg(
            "ACK sip:bob@198.51.100.2:5070 SIP/2.0",
            f"Route: <sip:198.51.100.80:5060;lr;member={token}>",
            f"To: <sip:bob@example.com>;tag={tag_prefix('m2')}0a1b2c3d",
            "CSeq: 1 ACK",
        )
        assert place(peek(ack), VIEW, 0.0) is None


def test_new_work_goes_to_the_call_ids_owner() -> None:
    for i in range(50):
        invite = msg("INVITE sip:bob@example.com SIP/2.0", f"Call-ID: call-{i}@198.51.100.1")
        owner = VIEW.ring.owner(f"call-{i}@198.51.100.1".encode())
        assert place(peek(invite), VIEW, 0.0) == (None if owner == "m1" else owner)


def test_local_state_wins() -> None:
    invite = msg("INVITE sip:bob@example.com SIP/2.0")
    assert place(peek(invite), VIEW, 0.0, has_state=True) is None


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000))
def test_during_a_handoff_the_previous_owner_keeps_its_calls(i: int) -> None:
    """m4 joined: a Call-ID that moved to m4 still goes to its old owner for 64*T1."""
    key = f"call-{i}@198.51.100.1"
    before = Ring(["m1", "m2", "m3"])
    after = before.with_member("m4")
    view = View(
        me="m4",
        live=frozenset({"m1", "m2", "m3", "m4"}),
        ring=after,
        farm=FARM,
        previous=before,
        handoff_until=32.0,
    )
    cancel = msg("CANCEL sip:bob@example.com SIP/2.0", f"Call-ID: {key}", "CSeq: 1 CANCEL")
    p = peek(cancel)
    old, new = before.owner(key), after.owner(key)
    expected_during = None if old == "m4" else old
    expected_after = None if new == "m4" else new
    assert place(p, view, 10.0) == expected_during
    assert place(p, view, 40.0) == expected_after


def test_a_new_invite_is_handed_off_only_while_it_may_be_retransmitted() -> None:
    """m4 joined: a new INVITE goes to the old owner for INVITE_HANDOFF, then to the new."""
    before = Ring(["m1", "m2", "m3"])
    after = before.with_member("m4")
    view = View("m4", frozenset({"m1", "m2", "m3", "m4"}), after, FARM, before, HANDOFF)
    moved = next(
        f"call-{i}@198.51.100.1" for i in range(1000)
        if after.owner(f"call-{i}@198.51.100.1") == "m4"
    )  # fmt: skip
    invite = peek(msg("INVITE sip:bob@example.com SIP/2.0", f"Call-ID: {moved}"))
    assert place(invite, view, INVITE_HANDOFF - 1) == before.owner(moved)
    assert place(invite, view, INVITE_HANDOFF + 1) is None  # m4's own now


def test_a_drained_member_is_handed_no_new_invite() -> None:
    """m3 was drained: a new INVITE it owned goes to its new owner, a CANCEL still to m3."""
    before = Ring(["m1", "m2", "m3"])
    after = Ring(["m1", "m2"])
    view = View("m1", frozenset({"m1", "m2", "m3"}), after, FARM, before, HANDOFF)
    moved = next(
        f"call-{i}@198.51.100.1" for i in range(1000)
        if before.owner(f"call-{i}@198.51.100.1") == "m3"
    )  # fmt: skip
    invite = peek(msg("INVITE sip:bob@example.com SIP/2.0", f"Call-ID: {moved}"))
    cancel = peek(msg("CANCEL sip:bob@example.com SIP/2.0", f"Call-ID: {moved}", "CSeq: 1 CANCEL"))
    new_owner = after.owner(moved)
    assert place(invite, view, 1.0) == (None if new_owner == "m1" else new_owner)
    assert place(cancel, view, 1.0) == "m3"
