"""cluster/link.py over real TCP on loopback: handshake, relay both ways, reconnect, refusals."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from cluster.frames import Frame, Hello, Relay, encode
from cluster.link import Links

pytestmark = pytest.mark.timeout(30)

INVITE = b"INVITE sip:bob@example.com SIP/2.0\r\nCall-ID: c1\r\n\r\n"


class Inbox:
    def __init__(self) -> None:
        self.frames: list[tuple[str, Frame]] = []

    def frame_received(self, peer: str, frame: Frame) -> None:
        self.frames.append((peer, frame))


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("not in time")
        await asyncio.sleep(0.01)


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro())  # type: ignore[arg-type]


def test_a_relay_crosses_the_link_both_ways_on_one_connection() -> None:
    async def main() -> None:
        a_in, b_in = Inbox(), Inbox()
        a, b = Links("a1", a_in), Links("b2", b_in)
        b_addr = await b.listen("127.0.0.71", 0)
        a_addr = await a.listen("127.0.0.72", 0)
        try:
            a.want("b2", b_addr)  # a1 < b2: a dials
            b.want("a1", a_addr)  # b only waits
            await until(lambda: a.is_up("b2") and b.is_up("a1"))
            relay = Relay(INVITE, "UDP", "198.51.100.1", 5060, "a1")
            assert a.send("b2", relay)
            await until(lambda: bool(b_in.frames))
            assert b_in.frames == [("a1", relay)]
            answer = Relay(b"SIP/2.0 100 Trying\r\n\r\n", "UDP", "198.51.100.1", 5060, "b2")
            assert b.send("a1", answer)
            await until(lambda: bool(a_in.frames))
            assert a_in.frames == [("b2", answer)]
            assert not b.counters.get("dial_retries")  # b never dialled
        finally:
            await a.close()
            await b.close()

    run(main)


def test_a_lost_peer_is_redialled_with_backoff() -> None:
    async def main() -> None:
        a_in, b_in = Inbox(), Inbox()
        a = Links("a1", a_in)
        b = Links("b2", b_in)
        b_addr = await b.listen("127.0.0.73", 0)
        try:
            a.want("b2", b_addr)
            await until(lambda: a.is_up("b2"))
            await b.close()  # the peer dies
            await until(lambda: not a.is_up("b2"))
            assert not a.send("b2", Relay(INVITE, "UDP", "198.51.100.1", 5060, "a1"))
            await until(lambda: a.counters.get("dial_retries", 0) >= 2)  # a dials in vain
            b = Links("b2", b_in)
            await b.listen(*b_addr)  # it comes back on the same address
            await until(lambda: a.is_up("b2"))
            assert a.send("b2", Relay(INVITE, "UDP", "198.51.100.1", 5060, "a1"))
            await until(lambda: bool(b_in.frames))
            assert a.counters["dial_retries"] >= 1
        finally:
            await a.close()
            await b.close()

    run(main)


@pytest.mark.parametrize(
    "first",
    [
        encode(Hello("x9", (99,))),  # no common version
        encode(Relay(INVITE, "UDP", "198.51.100.1", 5060, "x9")),  # no Hello first
        b"\xc1garbage",
    ],
)
def test_a_peer_that_does_not_speak_the_protocol_is_closed(first: bytes) -> None:
    async def main() -> None:
        inbox = Inbox()
        b = Links("b2", inbox)
        host, port = await b.listen("127.0.0.74", 0)
        try:
            reader, writer = await asyncio.open_connection(host, port)
            await reader.read(64)  # b's Hello
            writer.write(first)
            writer.write(encode(Relay(INVITE, "UDP", "198.51.100.1", 5060, "x9")))
            await writer.drain()
            assert await asyncio.wait_for(reader.read(64), 5.0) == b""  # closed by b
            writer.close()
            assert inbox.frames == []
            assert not b.is_up("x9")
        finally:
            await b.close()

    run(main)
