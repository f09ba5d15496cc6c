"""cluster/link.py over real sockets on loopback (Unix and TCP): handshake, relays both ways,
reconnect, refusals."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import pytest

from cluster import link
from cluster.frames import Frame, FrameReader, Hello, Ping, Relay, encode
from cluster.link import SILENT, Links

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
            assert a.is_local("b2") and b.is_local("a1")  # one namespace: a Unix socket
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


def test_a_peer_without_a_local_listener_is_dialled_over_tcp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a member in another network namespace looks like from here: its abstract
    name is not found, so the link goes over TCP (and a cut veth cuts it)."""

    async def main() -> None:
        a_in, b_in = Inbox(), Inbox()
        a, b = Links("a1", a_in), Links("b2", b_in)
        monkeypatch.setattr(link, "LOCAL", False)
        b_addr = await b.listen("127.0.0.74", 0)  # TCP only
        monkeypatch.setattr(link, "LOCAL", True)
        try:
            a.want("b2", b_addr)
            b.want("a1", ("127.0.0.75", 9))
            await until(lambda: a.is_up("b2") and b.is_up("a1"))
            assert not a.is_local("b2") and not b.is_local("a1")
            relay = Relay(INVITE, "UDP", "198.51.100.1", 5060, "a1")
            assert a.send("b2", relay)
            await until(lambda: bool(b_in.frames))
            assert b_in.frames == [("a1", relay)]
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


def test_a_view_that_names_the_peer_again_cuts_the_backoff_short(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A restarted peer is dialled when the view names it again, not when the backoff
    ends: the backoff is made an hour here, so only the wake can link them."""

    async def main() -> None:
        a_in, b_in = Inbox(), Inbox()
        a = Links("a1", a_in)
        b = Links("b2", b_in)
        b_addr = await b.listen("127.0.0.76", 0)
        monkeypatch.setattr(link, "BACKOFF_FIRST", 3600.0)  # every dialler of a waits an hour
        try:
            a.want("b2", b_addr)  # the first attempt is at once
            await until(lambda: a.is_up("b2"))
            assert a.was_up("b2") and not b.was_up("c3")
            retries = a.counters.get("dial_retries", 0)
            await b.close()  # the peer stops
            await until(lambda: a.counters.get("dial_retries", 0) > retries)  # a waits an hour
            b = Links("b2", b_in)
            await b.listen(*b_addr)  # it restarts on the same address
            await asyncio.sleep(0.2)
            assert not a.is_up("b2")  # nobody dials: a is in its backoff
            a.want("b2", b_addr)  # the view names it again (it registered)
            await until(lambda: a.is_up("b2") and b.is_up("a1"))
            assert b.was_up("a1")
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


@pytest.mark.parametrize("version", [2, 1])
def test_a_peer_that_stops_speaking_is_silent_until_it_speaks_again(version: int) -> None:
    """A frozen or cut-off peer keeps its TCP connection: only its silence tells.
    A peer of the previous release (version 1: no Pings) is never taken as silent."""

    async def main() -> None:
        inbox = Inbox()
        b = Links("b2", inbox)
        host, port = await b.listen("127.0.0.75", 0)
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(encode(Hello("x9", (version,))))
            await writer.drain()
            await until(lambda: b.is_up("x9"))
            assert not b.silent("x9")
            pings = FrameReader()
            heard: list[Frame] = []
            for _ in range(int(SILENT / 0.05) + 6):  # b pings us meanwhile (version 2)
                await asyncio.sleep(0.05)
                with contextlib.suppress(TimeoutError):
                    heard += pings.feed(await asyncio.wait_for(reader.read(4096), 0.001))
            assert b.is_up("x9")  # the connection stays …
            assert b.silent("x9") is (version == 2)  # … but says nothing
            assert (Ping() in heard) is (version == 2)
            writer.write(encode(Ping()) if version == 2 else b"")
            await writer.drain()
            await until(lambda: not b.silent("x9"))
            assert b.send("x9", Relay(INVITE, "UDP", "198.51.100.1", 5060, "b2"))
            assert inbox.frames == []  # Pings are the link's own, never the handler's
            writer.close()
        finally:
            await b.close()

    run(main)
