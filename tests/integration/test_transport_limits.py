"""The UDP and TCP edges of a real member under hostile input, over loopback sockets.

Each limit of :class:`TransportConfig` is tested against ``sipfarm member`` with the
defaults (the ``member`` fixture of conftest.py) and, where a test needs a small
value (the idle timeout, a datagram larger than the limit), against a member
process started with small limits (:mod:`member_proc`).  After each test the member
still answers OPTIONS over UDP and over a fresh TCP connection, has logged no
traceback, and exits 0 on SIGTERM.
"""

from __future__ import annotations

import contextlib
import random
import re
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sipp
from member_proc import start_limited_member, wait_for_tcp
from sipp import Member, stop_process

from sipfarm.transport.config import TransportConfig

pytestmark = pytest.mark.timeout(60)

DEFAULTS = TransportConfig()
SMALL = TransportConfig(
    max_message_size=8192,
    max_header_size=2048,
    max_connections_per_source=2,
    idle_timeout=1.0,
    garbage_budget=2,
)
#: How long a peer waits for an answer that must come.
ANSWER_S = 5.0
#: The largest UDP payload IPv4 can carry (65535 - 20 IP - 8 UDP); a 70000-byte
#: datagram cannot be sent at all (EMSGSIZE).
MAX_UDP_PAYLOAD = 65507
#: What writing to a connection the member has just closed raises.
CLOSED_ON_WRITE = (BrokenPipeError, ConnectionResetError)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def member(member: Member) -> Member:
    """conftest.py's member, once its TCP port listens too (see :func:`wait_for_tcp`)."""
    return wait_for_tcp(member)


@pytest.fixture
def small(tmp_path: Path) -> Iterator[Member]:
    """A member with the :data:`SMALL` limits; must exit 0 on SIGTERM."""
    started = start_limited_member(tmp_path, SMALL)
    try:
        yield started
    finally:
        status = stop_process(started.process)
    assert status == 0, f"member exited {status} after SIGTERM:\n{started.stderr_text()}"


@pytest.fixture(params=["defaults", "small"])
def limited(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Member, TransportConfig]]:
    """The ``sipfarm member`` CLI with the default limits, and a member with small ones."""
    if request.param == "defaults":
        yield request.getfixturevalue("member"), DEFAULTS
    else:
        yield request.getfixturevalue("small"), SMALL


# ---------------------------------------------------------------------- building requests


def options(
    host: str,
    port: int,
    *,
    transport: str = "UDP",
    via_port: int = 5060,
    rport: bool = False,
    call_id: str | None = None,
    cseq: int = 1,
    extra: str = "",
    content_length: str | None = "0",
) -> bytes:
    """An OPTIONS to ``host:port``; ``extra`` header lines go before Content-Length."""
    call_id = call_id or secrets.token_hex(8)
    lines = [
        f"OPTIONS sip:member@{host}:{port} SIP/2.0",
        f"Via: SIP/2.0/{transport} {host}:{via_port};branch=z9hG4bK{secrets.token_hex(6)}"
        + (";rport" if rport else ""),
        "Max-Forwards: 70",
        f"From: <sip:tester@{host}>;tag={secrets.token_hex(4)}",
        f"To: <sip:member@{host}:{port}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} OPTIONS",
        *([extra] if extra else []),
        *([f"Content-Length: {content_length}"] if content_length is not None else []),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def broken(host: str, port: int, n: int) -> bytes:
    """A broken request the TCP framer still cuts out: salvageable on even ``n``, not on odd."""
    if n % 2 == 0:
        return options(host, port, transport="TCP").replace(b"CSeq: 1 ", b"CSeq: x ")
    return b"hello %d\r\nContent-Length: 0\r\n\r\n" % n


def status_of(message: bytes) -> int:
    assert message.startswith(b"SIP/2.0 "), message[:200]
    return int(message[8:11])


def header(message: bytes, name: str) -> str:
    m = re.search(rb"^" + name.encode() + rb"[ \t]*:[ \t]*(.*?)\r$", message, re.M | re.I)
    assert m is not None, f"no {name} in {message!r}"
    return m.group(1).decode()


# ------------------------------------------------------------------------------- peers


class UdpPeer:
    """A UDP socket on the member's loopback address."""

    def __init__(self, host: str):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.port: int = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    def receive_until(self, call_id: str, timeout: float = ANSWER_S) -> list[bytes]:
        """Every datagram received up to the one carrying ``call_id``, that one last."""
        got: list[bytes] = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                break
            got.append(data)
            if call_id.encode() in data:
                return got
        raise AssertionError(f"no answer for {call_id} within {timeout} s; got {got!r}")


class TcpPeer(sipp.TcpPeer):
    """A TCP connection from the member's loopback address that can also ask OPTIONS."""

    def options(self, host: str, port: int) -> bytes:
        call_id = secrets.token_hex(8)
        self.send(options(host, port, transport="TCP", call_id=call_id))
        answer = self.read()
        assert answer is not None, "closed instead of answering an OPTIONS"
        assert header(answer, "Call-ID") == call_id
        return answer


def udp_options_status(member: Member) -> int:
    peer = UdpPeer(member.host)
    try:
        call_id = secrets.token_hex(8)
        request = options(member.host, member.port, via_port=peer.port, call_id=call_id)
        peer.sock.sendto(request, (member.host, member.port))
        return status_of(peer.receive_until(call_id)[-1])
    finally:
        peer.close()


def assert_still_serving(member: Member) -> None:
    """OPTIONS answered 200 over UDP and over a fresh TCP connection; no traceback logged."""
    assert member.process.poll() is None, f"member died:\n{member.stderr_text()}"
    assert udp_options_status(member) == 200
    peer = TcpPeer(member.host, member.port)
    try:
        assert status_of(peer.options(member.host, member.port)) == 200
    finally:
        peer.close()
    assert "Traceback" not in member.stderr_text(), member.stderr_text()


# ------------------------------------------------------------------------------------- UDP


RANDOM = random.Random(3261)


@pytest.mark.parametrize(
    "garbage",
    [
        RANDOM.randbytes(1),
        RANDOM.randbytes(1400),
        b"\x00\xff" * 50,
        b"\r\n",
        b"\r\n\r\n",
        b"SIP/2.0 200 OK\r\n\r\n",
        b"OPTIONS sip:x SIP/2.0\r\n\r\n",
        RANDOM.randbytes(MAX_UDP_PAYLOAD),
    ],
    ids=["1-byte", "1400-bytes", "binary", "crlf", "crlfcrlf-keepalive", "bare-status",
         "no-headers", "largest-datagram"],
)  # fmt: skip
def test_udp_garbage_is_dropped_and_the_member_keeps_serving(
    member: Member, garbage: bytes
) -> None:
    peer = UdpPeer(member.host)
    try:
        call_id = secrets.token_hex(8)
        peer.sock.sendto(garbage, (member.host, member.port))
        peer.sock.sendto(
            options(member.host, member.port, via_port=peer.port, call_id=call_id),
            (member.host, member.port),
        )
        got = peer.receive_until(call_id)
    finally:
        peer.close()

    # One socket, one loop: an answer to the garbage would have come before this one.
    assert got[:-1] == []
    assert status_of(got[-1]) == 200
    assert_still_serving(member)


def test_udp_too_large_answered_513_when_salvageable(small: Member) -> None:
    """RFC 3261 §21.5.8 / TransportConfig.max_message_size: 513 when the head survives."""
    peer = UdpPeer(small.host)
    target = (small.host, small.port)
    try:
        big_id = secrets.token_hex(8)
        filler = "X-Filler: " + "a" * (SMALL.max_message_size + 100)
        big = options(small.host, small.port, via_port=peer.port, call_id=big_id, extra=filler)
        assert SMALL.max_message_size < len(big) < MAX_UDP_PAYLOAD
        peer.sock.sendto(big, target)
        answer = peer.receive_until(big_id)

        junk_then = secrets.token_hex(8)
        peer.sock.sendto(RANDOM.randbytes(SMALL.max_message_size + 1000), target)
        peer.sock.sendto(
            options(small.host, small.port, via_port=peer.port, call_id=junk_then), target
        )
        after_junk = peer.receive_until(junk_then)
    finally:
        peer.close()

    assert len(answer) == 1
    assert answer[0].startswith(b"SIP/2.0 513 ")
    assert header(answer[0], "CSeq") == "1 OPTIONS"
    assert after_junk[:-1] == []  # unsalvageable: dropped
    assert status_of(after_junk[-1]) == 200
    assert_still_serving(small)


@pytest.mark.parametrize("rport", [True, False], ids=["rport", "no-rport"])
def test_udp_too_large_answer_addressed_like_any_other(small: Member, rport: bool) -> None:
    """The 513 the UDP edge builds goes where any response goes (RFC 3581 §4 with rport,
    RFC 3261 §18.2.2 without), its top Via stamped as any request's (§18.2.1)."""
    source, via = UdpPeer(small.host), UdpPeer(small.host)
    try:
        call_id = secrets.token_hex(8)
        filler = "X-Filler: " + "a" * (SMALL.max_message_size + 100)
        big = options(small.host, small.port, via_port=via.port, rport=rport, call_id=call_id,
                      extra=filler)  # fmt: skip
        source.sock.sendto(big, (small.host, small.port))
        got = (source if rport else via).receive_until(call_id)
    finally:
        source.close()
        via.close()

    assert status_of(got[-1]) == 513
    if rport:
        assert f";rport={source.port}" in header(got[-1], "Via")
        assert f";received={small.host}" in header(got[-1], "Via")
    assert_still_serving(small)


@pytest.mark.parametrize("rport", [True, False], ids=["rport", "no-rport"])
def test_udp_answer_address(member: Member, rport: bool) -> None:
    """RFC 3581 §4: with rport, to the source port; RFC 3261 §18.2.2: else to the Via port."""
    source, via = UdpPeer(member.host), UdpPeer(member.host)
    try:
        call_id = secrets.token_hex(8)
        request = options(member.host, member.port, via_port=via.port, rport=rport,
                          call_id=call_id)  # fmt: skip
        source.sock.sendto(request, (member.host, member.port))
        got = (source if rport else via).receive_until(call_id)
    finally:
        source.close()
        via.close()

    assert status_of(got[-1]) == 200
    top_via = header(got[-1], "Via")
    if rport:
        assert f";rport={source.port}" in top_via
        assert f";received={member.host}" in top_via
    else:
        assert "rport" not in top_via
    assert_still_serving(member)


# ------------------------------------------------------------------------------------- TCP


def test_tcp_two_requests_in_one_write_answered_in_order(member: Member) -> None:
    peer = TcpPeer(member.host, member.port)
    try:
        first = options(member.host, member.port, transport="TCP", call_id="first", cseq=1)
        second = options(member.host, member.port, transport="TCP", call_id="second", cseq=2)
        peer.send(first + second)
        answers = [peer.read(), peer.read()]
    finally:
        peer.close()

    assert all(a is not None for a in answers)
    assert [status_of(a) for a in answers if a] == [200, 200]
    assert [header(a, "Call-ID") for a in answers if a] == ["first", "second"]
    assert [header(a, "CSeq") for a in answers if a] == ["1 OPTIONS", "2 OPTIONS"]
    assert_still_serving(member)


def test_tcp_request_fed_one_byte_at_a_time(member: Member) -> None:
    peer = TcpPeer(member.host, member.port)
    try:
        request = options(member.host, member.port, transport="TCP", call_id="bytewise")
        for i in range(len(request)):
            peer.send(request[i : i + 1])
        answer = peer.read()
    finally:
        peer.close()

    assert answer is not None
    assert status_of(answer) == 200
    assert header(answer, "Call-ID") == "bytewise"
    assert_still_serving(member)


def barrier(member: Member) -> None:
    """Return once the member has read every byte already sent to it on any socket.

    The member is one event loop: bytes sent before an OPTIONS round trip are
    readable in the loop iteration that reads the OPTIONS, or an earlier one; a
    second round trip starts after that iteration has ended.
    """
    for _ in range(2):
        assert udp_options_status(member) == 200


@pytest.mark.parametrize(
    ("content_length", "status"),
    [(None, 400), ("70000", 513)],
    ids=["no-content-length", "content-length-past-limit"],
)
@pytest.mark.parametrize("writes", ["one-write", "byte-at-a-time", "split-before-blank-line"])
def test_tcp_stream_out_of_step_answered_and_closed(
    member: Member, content_length: str | None, status: int, writes: str
) -> None:
    """RFC 3261 §18.3: Content-Length is mandatory on a stream, without it the stream is out
    of step (400); one past max_message_size is 513.  Either is answered, then closed.

    The head arrives whole or in pieces: the answer is built from what the
    connection received, not only from the last piece.
    """
    peer = TcpPeer(member.host, member.port)
    try:
        request = options(member.host, member.port, transport="TCP", content_length=content_length)
        if writes == "one-write":
            peer.send(request)
        elif writes == "byte-at-a-time":
            for i in range(len(request)):
                peer.send(request[i : i + 1])
        else:
            peer.send(request[:-2])
            barrier(member)  # the member has read all but the last CRLF
            peer.send(request[-2:])
        got = peer.read_until_closed()
    finally:
        peer.close()

    assert [status_of(m) for m in got] == [status]
    assert_still_serving(member)


def test_tcp_keepalives_are_not_garbage(limited: tuple[Member, TransportConfig]) -> None:
    """RFC 5626 §3.5.1 double-CRLF keep-alives, more than the garbage budget: not broken
    messages, so the connection stays open and the next request is answered."""
    member, limits = limited
    peer = TcpPeer(member.host, member.port)
    try:
        peer.send(b"\r\n\r\n" * (limits.garbage_budget + 2))
        answer = peer.options(member.host, member.port)
        for _ in range(limits.garbage_budget + 2):
            peer.send(b"\r\n\r\n")
        again = peer.options(member.host, member.port)
    finally:
        peer.close()

    assert status_of(answer) == 200
    assert status_of(again) == 200
    assert_still_serving(member)


def test_tcp_header_block_past_the_limit_closed(
    limited: tuple[Member, TransportConfig],
) -> None:
    """TransportConfig.max_header_size: no blank line by then: closed (after a 513 at most)."""
    member, limits = limited
    peer = TcpPeer(member.host, member.port)
    try:
        head = options(member.host, member.port, transport="TCP").split(b"\r\n\r\n")[0] + b"\r\n"
        filler = b"X-Filler: " + b"a" * 60 + b"\r\n"
        data = head + filler * (limits.max_header_size // len(filler) + 2)
        with contextlib.suppress(*CLOSED_ON_WRITE):  # closed mid-write: that is the point
            peer.send(data)
        got = peer.read_until_closed()
    finally:
        peer.close()

    assert all(status_of(m) == 513 for m in got), got
    assert_still_serving(member)


def test_tcp_more_broken_messages_than_the_budget_closed(
    limited: tuple[Member, TransportConfig],
) -> None:
    """TransportConfig.garbage_budget: each broken message answered when it can be; one
    more than the budget, and the connection is closed."""
    member, limits = limited
    peer = TcpPeer(member.host, member.port)
    try:
        for n in range(limits.garbage_budget):
            peer.send(broken(member.host, member.port, n))
            if n % 2 == 0:
                answer = peer.read()
                assert answer is not None, f"closed after {n + 1} broken messages"
                assert status_of(answer) == 400
        assert status_of(peer.options(member.host, member.port)) == 200  # still open
        peer.send(broken(member.host, member.port, 0))
        got = peer.read_until_closed()
    finally:
        peer.close()

    assert [status_of(m) for m in got] == [400]
    assert_still_serving(member)


def test_tcp_connections_past_the_per_source_limit_closed(
    limited: tuple[Member, TransportConfig],
) -> None:
    member, limits = limited
    peers = []
    try:
        for _ in range(limits.max_connections_per_source):
            peers.append(TcpPeer(member.host, member.port))
            assert status_of(peers[-1].options(member.host, member.port)) == 200
        extra = TcpPeer(member.host, member.port)
        peers.append(extra)
        with contextlib.suppress(*CLOSED_ON_WRITE):
            extra.send(options(member.host, member.port, transport="TCP"))
        assert extra.read_until_closed() == []

        # One of them leaves: a new connection from the source is served again.
        peers.pop(0).close()
        deadline = time.monotonic() + ANSWER_S
        while True:
            again = TcpPeer(member.host, member.port)
            peers.append(again)
            try:
                again.send(options(member.host, member.port, transport="TCP"))
                answer = again.read()
            except CLOSED_ON_WRITE:
                answer = None
            if answer is not None or time.monotonic() > deadline:
                break
            time.sleep(0.05)  # poll interval while the member notices the close
        assert answer is not None, "no connection served after one of the first closed"
        assert status_of(answer) == 200
    finally:
        for p in peers:
            p.close()

    assert_still_serving(member)


def test_tcp_idle_connection_closed_active_one_kept(small: Member) -> None:
    """TransportConfig.idle_timeout: silent connections are closed, busy ones are not."""
    idle = TcpPeer(small.host, small.port)
    busy = TcpPeer(small.host, small.port)
    try:
        assert status_of(idle.options(small.host, small.port)) == 200
        # The sweep runs every min(idle_timeout, 5 s): closed within two sweeps, and slack.
        deadline = time.monotonic() + 2 * SMALL.idle_timeout + ANSWER_S
        closed = False
        while not closed and time.monotonic() < deadline:
            assert status_of(busy.options(small.host, small.port)) == 200
            closed = idle.closed_within(SMALL.idle_timeout / 4)
        assert closed, "idle connection still open"
        assert status_of(busy.options(small.host, small.port)) == 200
    finally:
        idle.close()
        busy.close()

    assert_still_serving(small)


@pytest.mark.parametrize("path", ["udp-513", "tcp-400", "tcp-513"])
def test_answers_built_by_the_edges_carry_a_to_tag(small: Member, path: str) -> None:
    """RFC 3261 §8.2.6.2: every response but 100 adds a To-tag when the request has none,
    the answers the transports build from a salvaged head too."""
    if path == "udp-513":
        peer = UdpPeer(small.host)
        try:
            call_id = secrets.token_hex(8)
            filler = "X-Filler: " + "a" * (SMALL.max_message_size + 100)
            big = options(small.host, small.port, via_port=peer.port, call_id=call_id,
                          extra=filler)  # fmt: skip
            peer.sock.sendto(big, (small.host, small.port))
            answer = peer.receive_until(call_id)[-1]
        finally:
            peer.close()
    else:
        tcp = TcpPeer(small.host, small.port)
        try:
            length = None if path == "tcp-400" else "70000"
            tcp.send(options(small.host, small.port, transport="TCP", content_length=length))
            got = tcp.read_until_closed()
        finally:
            tcp.close()
        assert len(got) == 1
        answer = got[0]

    assert status_of(answer) == int(path[-3:])
    assert ";tag=" in header(answer, "To"), answer
    assert_still_serving(small)
