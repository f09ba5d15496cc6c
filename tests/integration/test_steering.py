"""The kernel steering of the one-host farm (sipfarm/transport/steering.py), on real sockets.

Three UDP sockets share one loopback address with SO_REUSEPORT, as the members
of ``sipfarm up`` do, each in its member's slot.  A response reaches the socket
of the token in its top Via branch, and a request the socket of its Call-ID's
owner on the ring the members published, whatever port they come from;
everything else (garbage, a token of no member, a branch or a Call-ID past the
scan, a member that left, no ring yet) still reaches one of the sockets:
steering never drops a datagram, it only chooses among the members.  The
program itself is checked by the kernel's verifier when :meth:`Steering.create`
loads it.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import time
from collections.abc import Iterator

import pytest
from sipp import free_port, fresh_loopback

from cluster.ring import Ring
from sipfarm.transport.steering import (
    CALL_ID_MAX,
    SCAN,
    SCAN_REQUEST,
    Enlisted,
    Steering,
    SteeringError,
    program,
)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="eBPF for SO_REUSEPORT needs root (CAP_BPF, CAP_NET_ADMIN)"
)

TOKENS = ("m1", "m2", "edge7")


def response(token: str, n: int, status: bytes = b"180 Ringing", pad: int = 0) -> bytes:
    return (
        b"SIP/2.0 " + status + b"\r\n"
        + b"X-Pad: " + b"x" * pad + b"\r\n" * bool(pad)
        + b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK." + token.encode() + b".%d\r\n" % n
        + b"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKcaller%d\r\n" % n
        + b"Call-ID: c%d@example.com\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n" % n
    )  # fmt: skip


def request(call_id: bytes, header: bytes = b"Call-ID: ", method: bytes = b"INVITE") -> bytes:
    return (
        method + b" sip:bob@example.com SIP/2.0\r\n"
        + b"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK.m1.x\r\n"
        + b"From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\n"
        + header + call_id + b"\r\nCSeq: 1 " + method + b"\r\nContent-Length: 0\r\n\r\n"
    )  # fmt: skip


class Group:
    """Sockets bound to one address with SO_REUSEPORT, each enlisted under its token."""

    def __init__(self, steering: Steering, tokens: tuple[str, ...]) -> None:
        host = fresh_loopback()
        self.address = (host, free_port(host))
        self.sockets: dict[str, socket.socket] = {}
        self.enlisted: dict[str, Enlisted] = {}
        for token in tokens:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(self.address)
            sock.setblocking(False)
            self.sockets[token] = sock
            self.enlisted[token] = Enlisted(steering, token, sock)

    def send(self, datagrams: list[bytes]) -> None:
        """Each from its own source port: a new 4-tuple, a new hash, every time."""
        for data in datagrams:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
                out.bind(("127.0.0.1", 0))
                out.sendto(data, self.address)

    def received(self, expect: int) -> dict[str, list[bytes]]:
        """What each socket received, once ``expect`` datagrams came (or 2 s passed)."""
        got: dict[str, list[bytes]] = {token: [] for token in self.sockets}
        deadline = time.monotonic() + 2.0
        with selectors.DefaultSelector() as sel:
            for token, sock in self.sockets.items():
                sel.register(sock, selectors.EVENT_READ, token)
            while sum(map(len, got.values())) < expect:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                for key, _ in sel.select(left):
                    with contextlib.suppress(BlockingIOError):
                        got[key.data].append(key.fileobj.recv(65536))  # type: ignore[union-attr]
        return got

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()


@pytest.fixture
def steering() -> Iterator[Steering]:
    made = Steering.create()
    for slot, token in enumerate(TOKENS):
        made.assign(token, slot)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def group(steering: Steering) -> Iterator[Group]:
    g = Group(steering, TOKENS)
    try:
        yield g
    finally:
        g.close()


def test_the_program_is_whole_instructions_ending_in_exit() -> None:
    code = program(3, 4, 5, 6)
    assert len(code) % 8 == 0
    assert code[-8] == 0x95  # exit
    assert len(code) // 8 < 4096


def test_each_response_reaches_the_member_of_its_branch(group: Group) -> None:
    sent = [response(TOKENS[n % 3], n) for n in range(60)]
    group.send(sent)
    got = group.received(len(sent))
    for token in TOKENS:
        assert len(got[token]) == 20, {t: len(v) for t, v in got.items()}
        assert all(b"z9hG4bK." + token.encode() + b"." in d for d in got[token])


def test_each_request_reaches_the_owner_of_its_call_id(group: Group) -> None:
    ring = Ring(TOKENS)
    group.enlisted["edge7"].publish(ring.table())
    forms = [b"Call-ID: ", b"CALL-ID:", b"call-id:\t  ", b"i: ", b"I:"]
    call_ids = [b"%d-%d@198.51.100.%d" % (n, n * 7919, n % 250) for n in range(60)]
    call_ids[7] = b"x" * CALL_ID_MAX  # as long as it hashes
    sent = [request(c, forms[n % len(forms)]) for n, c in enumerate(call_ids)]
    sent.append(request(b"in-dialog@198.51.100.9", method=b"BYE").replace(
        b"From:", b"Route: <sip:198.51.100.1;lr>\r\n" * 6 + b"From:"))  # fmt: skip
    call_ids.append(b"in-dialog@198.51.100.9")
    group.send(sent)
    got = group.received(len(sent))
    for token in TOKENS:
        want = sorted(c for c in call_ids if ring.owner(c) == token)
        assert sorted(next(c for c in call_ids if c + b"\r\n" in d) for d in got[token]) == want


def test_everything_else_is_delivered_by_the_hash(group: Group) -> None:
    others = (
        [b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7;"
         b"branch=z9hG4bK.m1.x%d\r\n\r\n" % n for n in range(20)]  # a request: by hash
        + [response("nobody", n) for n in range(10)]  # a token of no member
        + [response("m1", n).replace(b"z9hG4bK.", b"z9hG4bK") for n in range(10)]  # not ours
        + [response("m2", n, pad=SCAN) for n in range(10)]  # the branch past the scan
        + [b"\x00\x01garbage %d" % n for n in range(10)]
        + [b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK.m2"]  # cut in the token
        + [b"SIP/2.0 "]  # nothing after the status line's start
    )  # fmt: skip
    lost = b"lost-%d@198.51.100.1"
    group.enlisted["m1"].publish(Ring(["m1"]).table())  # every request to m1, but these:
    others += (
        [request(lost % n).replace(b"From:", b"X-Pad: " + b"x" * SCAN_REQUEST + b"\r\nFrom:")
         for n in range(10)]  # the Call-ID past the scan
        + [request(b"%d" % n + b"y" * (CALL_ID_MAX + 8)) for n in range(10)]  # too long
        + [request(lost % n).split(b"\r\nCSeq")[0] for n in range(10)]  # cut in the Call-ID
        + [request(lost % n).replace(b"Call-ID:", b"Call-ID :") for n in range(10)]  # blank
        + [request(lost % n).replace(b"Call-ID", b"X-Call-ID") for n in range(10)]  # no Call-ID
        + [b"OPTIONS sip:x SIP/2.0\r\ni:"]
    )  # fmt: skip
    group.send(others)
    got = group.received(len(others))
    assert sum(map(len, got.values())) == len(others)
    # the hash spread them: more than one member got some (p of one = 3 * 3**-112)
    assert sum(1 for v in got.values() if v) > 1


def test_a_member_that_left_or_died_gets_nothing_and_loses_nothing(
    steering: Steering, group: Group
) -> None:
    group.sockets["m2"].close()  # it exited: the kernel emptied its slot
    del group.sockets["m2"]
    group.enlisted["m1"].withdraw("edge7")  # it died for the view (a frozen process)
    sent = [response(token, n) for n in range(10) for token in TOKENS]
    group.send(sent)
    got = group.received(len(sent))
    assert sum(map(len, got.values())) == len(sent)  # the others' by hash, none lost
    assert sum(b"z9hG4bK.m1." in d for d in got["m1"]) == 10  # m1's still all at m1

    group.enlisted["m1"].publish(Ring(["m1", "m2", "edge7"]).table())
    calls = [request(b"after-%d@198.51.100.2" % n) for n in range(30)]
    group.send(calls)  # those of m2 and edge7 by hash, m1's at m1
    got = group.received(len(calls))
    assert sum(map(len, got.values())) == len(calls)
    assert len(got["m1"]) >= sum(Ring(TOKENS).owner(b"after-%d@198.51.100.2" % n) == "m1"
                                 for n in range(30))  # fmt: skip

    group.enlisted["m1"].enlist()  # in its slot already: nothing to do
    group.enlisted["edge7"].enlist()  # back in the view
    again = [response("edge7", n) for n in range(10)]
    group.send(again)
    assert len(group.received(10)["edge7"]) == 10


def test_a_token_without_a_slot_cannot_enlist(steering: Steering) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((fresh_loopback(), 0))
        with pytest.raises(SteeringError, match="no steering slot"):
            Enlisted(steering, "m9", sock)


def test_descriptors_travel_as_text() -> None:
    assert str(Steering.parse("7,8,9,10,11")) == "7,8,9,10,11"
    with pytest.raises(ValueError, match="five descriptors"):
        Steering.parse("7,8,9,10")
    with pytest.raises(ValueError, match="five descriptors"):
        Steering.parse("7,8,9,x,11")
