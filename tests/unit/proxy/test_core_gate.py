"""SipCore.gate: the stateless answers any member gives where a new request lands.

The farm edge asks ``gate`` before it relays a new request to its owner: a
challenge, or a 403/404, is answered by the member the request reached (two
cores with one secret stand for two members), the ACK of it is absorbed by any
member, and the retry with credentials is served by the owner.
"""

from __future__ import annotations

from corepair import (
    CALLER,
    Accounts,
    Pair,
    authorization,
    make_core,
    msg,
    register,
    request,
    status,
    wire,
)

from mail.api import AccountRecord
from mail.errors import AccountUnreadable
from sipfarm.ownership import is_stateless_tag, stateless_tag

INVITE = """
    INVITE sip:bob@example.com SIP/2.0
    Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKgate1
    Max-Forwards: 70
    From: Alice <sip:alice@example.com>;tag=a1
    To: Bob <sip:bob@example.com>
    Call-ID: gate-1@198.51.100.1
    CSeq: 1 INVITE
    Contact: <sip:alice@198.51.100.1:5060>
    """

REGISTER = """
    REGISTER sip:example.com SIP/2.0
    Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKgatereg
    Max-Forwards: 70
    From: <sip:alice@example.com>;tag=r1
    To: <sip:alice@example.com>
    Call-ID: gate-reg
    CSeq: 1 REGISTER
    Contact: <sip:alice@198.51.100.1:5060>
    """


def member(token: str, *, trusted: tuple[str, ...] = ()) -> Pair:
    """A member of a farm: the farm-wide secret, the same accounts."""
    return make_core(token=token, trusted=trusted)


def gate(pair: Pair, text: str) -> list[int] | None:
    out = pair.core.gate(wire(text), CALLER, pair.now)
    return None if out is None else [status(s) for s in out]


def with_credentials(challenge: bytes, text: str, method: str, uri: str, header: str) -> str:
    """``text`` retried (new branch, next CSeq) with alice's answer to ``challenge``."""
    value = authorization(challenge, "alice", method, uri)
    text = text.replace("z9hG4bKgate", "z9hG4bKretry").replace("CSeq: 1 ", "CSeq: 2 ")
    return text.rstrip() + f"\n{header}: {value}\n"


def test_a_call_is_challenged_where_it_lands_and_served_by_its_owner() -> None:
    landed, owner = member("m1"), member("m2")
    register(owner, "bob", "sip:bob@198.51.100.2:5070")
    out = landed.core.gate(wire(INVITE), CALLER, landed.now)
    assert out is not None and [status(s) for s in out] == [407]
    (challenge,) = out
    tag = msg(challenge).to.tag
    assert tag is not None and is_stateless_tag(tag) and tag.startswith("m1-")
    assert len(landed.core.layer) == 0  # no transaction, nothing to hand over
    ack = (
        INVITE.replace("INVITE sip", "ACK sip")
        .replace("CSeq: 1 INVITE", "CSeq: 1 ACK")
        .replace("To: Bob <sip:bob@example.com>", f"To: Bob <sip:bob@example.com>;tag={tag}")
    )
    assert owner.feed(ack) == []  # any member absorbs the ACK of a stateless answer
    assert owner.core.counters["ack_absorbed"] == 1
    retry = with_credentials(
        challenge.data, INVITE, "INVITE", "sip:bob@example.com", "Proxy-Authorization"
    )
    assert gate(landed, retry) is None  # credentials: the owner verifies them
    out = owner.feed(retry)
    assert status(out[0]) == 100 and request(out[1]).method == "INVITE"


def test_a_register_is_challenged_where_it_lands_and_saved_by_its_owner() -> None:
    landed, owner = member("m1"), member("m2")
    out = landed.core.gate(wire(REGISTER), CALLER, landed.now)
    assert out is not None and [status(s) for s in out] == [401]
    retry = with_credentials(out[0].data, REGISTER, "REGISTER", "sip:example.com", "Authorization")
    (ok,) = owner.feed(retry)
    assert status(ok) == 200
    assert [b.contact for b in owner.core.location.lookup("sip:alice@example.com", owner.now)] == [
        "sip:alice@198.51.100.1:5060"
    ]
    assert len(landed.core.location) == 0


def test_refusals_that_need_no_state_are_answered_where_they_land() -> None:
    m = member("m1")
    assert gate(m, REGISTER.replace("alice@", "nobody@")) == [404]
    assert gate(m, REGISTER.replace("example.com", "example.org")) == [403]
    assert gate(m, INVITE.replace("sip:alice@", "sip:nobody@")) == [403]  # unknown caller
    assert gate(m, INVITE.replace("Max-Forwards: 70", "Max-Forwards: 0")) == [483]
    assert gate(m, INVITE.replace("Max-Forwards: 70", "Require: foo\nMax-Forwards: 70")) == [420]


def test_what_the_owner_must_serve_is_left_to_it() -> None:
    m = member("m1")
    inbound = INVITE.replace("sip:alice@example.com", "sip:carol@example.net")
    assert gate(m, inbound) is None  # an inbound call is not challenged: proxied
    assert gate(member("m1", trusted=("198.51.100.0/24",)), INVITE) is None  # trusted
    assert gate(member("m1", trusted=("198.51.100.0/24",)), REGISTER) is None
    in_dialog = INVITE.replace("To: Bob <sip:bob@example.com>", "To: <sip:bob@example.com>;tag=b1")
    assert gate(m, in_dialog) is None
    bye = INVITE.replace("INVITE sip", "BYE sip").replace("CSeq: 1 INVITE", "CSeq: 1 BYE")
    assert gate(m, bye) is None
    assert gate(m, "garbage\n") is None  # the owner answers what it can of broken bytes
    m.core.overloaded = True
    assert gate(m, INVITE) is None  # shedding: the owner decides
    m.core.overloaded = False
    m.core.accepting = False
    assert gate(m, INVITE) is None


def test_an_ack_on_the_farms_route_set_is_never_absorbed_for_its_tag() -> None:
    """A UA's To-tag may look like a stateless one; on our route set the ACK is a 2xx's."""
    m = member("m1", trusted=("198.51.100.0/24",))
    ack = f"""
        ACK sip:bob@198.51.100.2:5070 SIP/2.0
        Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKack1
        Route: <sip:192.0.2.10:5060;lr;member=m1>
        Max-Forwards: 70
        From: Alice <sip:alice@example.com>;tag=a1
        To: Bob <sip:bob@example.com>;tag={stateless_tag("ua", 7)}
        Call-ID: gate-1@198.51.100.1
        CSeq: 1 ACK
        """
    (forwarded,) = m.feed(ack)
    assert request(forwarded).method == "ACK" and forwarded.address == ("198.51.100.2", 5070)


class Unreadable(Accounts):
    """The directory of a storage that fails to read ``bob``'s settings."""

    def account(self, user: str, domain: str) -> AccountRecord | None:
        if user == "bob":
            raise AccountUnreadable("account bob@example.com: settings unreadable: EIO")
        return super().account(user, domain)


def test_an_unreadable_account_gets_a_server_error_never_a_404() -> None:
    pair = make_core(trusted=("198.51.100.0/24",), accounts=Unreadable(users=("alice", "bob")))
    for text in (  # bob registers; alice calls bob
        REGISTER.replace("alice@", "bob@"),
        INVITE,
    ):
        (answer,) = pair.feed(text)
        assert status(answer) == 500, answer.data
        assert msg(answer).headers.get("Retry-After") == "5"
    ack = INVITE.replace("INVITE sip", "ACK sip").replace("CSeq: 1 INVITE", "CSeq: 1 ACK")
    assert pair.feed(ack) == []  # an ACK is never answered
    assert pair.core.counters["account_unreadable"] == 3
    landed = make_core(token="m2", accounts=Unreadable(users=("alice", "bob")))
    assert gate(landed, REGISTER.replace("alice@", "bob@")) is None  # the owner answers
