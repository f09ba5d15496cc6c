"""Matching (RFC 3261 §17.1.3, §17.2.3, §9.2) and branch creation (§8.1.1.7)."""

from __future__ import annotations

import pytest
from txnmessages import CANCEL, INVITE, REGISTER, request, response

from sipfarm.transaction import (
    ClientKey,
    LegacyServerKey,
    ServerKey,
    branch,
    cancel_target_key,
    client_key,
    make_ack,
    server_key,
)


def test_branch_is_cookie_token_random() -> None:
    seen: list[int] = []

    def rand(n: int) -> str:
        seen.append(n)
        return "00ff" * (n // 2)

    assert branch("m3", rand) == "z9hG4bKm300ff00ff00ff00ff"
    assert seen == [8]
    assert branch().startswith("z9hG4bK")
    assert branch() != branch()


def test_client_key_matches_response_by_branch_and_cseq_method() -> None:
    invite = request(INVITE)

    assert client_key(invite) == ClientKey("z9hG4bK74bf9", "INVITE")
    assert client_key(response(invite, 180)) == client_key(invite)
    cancel = request(CANCEL)
    assert client_key(response(cancel, 200)) == ClientKey("z9hG4bK74bf9", "CANCEL")
    assert client_key(response(cancel, 200)) != client_key(invite)


def test_server_key_ack_of_non_2xx_matches_the_invite() -> None:
    invite = request(INVITE)
    ack = make_ack(invite, response(invite, 486))

    assert server_key(invite) == ServerKey(
        "z9hG4bK74bf9", "client.atlanta.example.com:5060", "INVITE"
    )
    assert server_key(ack) == server_key(invite)
    assert server_key(request(INVITE, branch="z9hG4bKother")) != server_key(invite)


def test_server_key_sent_by_and_method_matter() -> None:
    invite = request(INVITE)
    moved = request(INVITE.replace(b"client.atlanta.example.com:5060", b"10.0.0.1:5060", 1))

    assert server_key(moved) != server_key(invite)
    assert server_key(request(CANCEL)) != server_key(invite)
    assert server_key(request(REGISTER)).method == "REGISTER"


def test_cancel_matches_the_invite_it_cancels() -> None:
    """§9.2: same branch and sent-by; method aside."""
    assert cancel_target_key(request(CANCEL)) == server_key(request(INVITE))
    with pytest.raises(ValueError):
        cancel_target_key(request(INVITE))


def test_rfc2543_fallback() -> None:
    """§17.2.3: no magic cookie, so R-URI, tags, Call-ID, CSeq and top Via match."""
    invite = request(INVITE, branch="74bf9")
    key = server_key(invite)

    assert key == LegacyServerKey(
        uri="sip:bob@biloxi.example.com",
        to_tag=None,
        from_tag="9fxced76sl",
        call_id="3848276298220188511@atlanta.example.com",
        cseq=1,
        method="INVITE",
        via="SIP/2.0/UDP client.atlanta.example.com:5060;branch=74bf9",
    )
    assert server_key(request(INVITE, branch="74bf9")) == key  # a retransmission
    assert server_key(make_ack(invite, response(invite, 486))) == key
    assert cancel_target_key(request(CANCEL, branch="74bf9")) == key
    other = request(INVITE.replace(b"CSeq: 1 INVITE", b"CSeq: 2 INVITE"), branch="74bf9")
    assert server_key(other) != key


def test_rfc2543_without_branch() -> None:
    data = INVITE.replace(b";branch=z9hG4bK74bf9", b"")
    invite = request(data)

    assert isinstance(server_key(invite), LegacyServerKey)
    assert client_key(invite) is None
