"""cluster/etcd.py against a real etcd (Debian etcd-server) started by the test on loopback.

Members see each other join, get ready, drain and leave; a member that stops
refreshing its lease is dead for everyone at one revision; control passes on;
a member that loses etcd says so.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sipp import fresh_loopback, stop_process

from cluster.etcd import EtcdMembership
from cluster.membership import MemberState, View

pytestmark = pytest.mark.timeout(60)  # etcd comes with install.sh: no skip when it is missing

BACKEND = frozenset({"frontend", "backend"})


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[tuple[str, int]]:
    host = fresh_loopback(2379)
    data = tmp_path / "etcd"
    argv = [
        "etcd", "--name", "t", "--data-dir", str(data),
        "--listen-client-urls", f"http://{host}:2379",
        "--advertise-client-urls", f"http://{host}:2379",
        "--listen-peer-urls", f"http://{host}:2380",
        "--initial-advertise-peer-urls", f"http://{host}:2380",
        "--initial-cluster", f"t=http://{host}:2380",
    ]  # fmt: skip
    log = (tmp_path / "etcd.log").open("wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while b"ready to serve client requests" not in (tmp_path / "etcd.log").read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp_path / "etcd.log").read_text()[-2000:])
            time.sleep(0.05)
        yield host, 2379
    finally:
        stop_process(process)
        log.close()


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("not in time")
        await asyncio.sleep(0.02)


class Watcher:
    def __init__(self) -> None:
        self.views: list[View] = []
        self.lost = False

    def view(self, v: View) -> None:
        self.views.append(v)

    def gone(self) -> None:
        self.lost = True

    @property
    def last(self) -> View:
        return self.views[-1]


def member(token: str, etcd: tuple[str, int], w: Watcher) -> EtcdMembership:
    return EtcdMembership(token, ("127.0.0.1", 7000), BACKEND, etcd, w.view, on_lost=w.gone)


def test_members_join_drain_leave_and_die(etcd: tuple[str, int]) -> None:
    async def main() -> None:
        w1, w2, w3 = Watcher(), Watcher(), Watcher()
        m1, m2, m3 = member("m1", etcd, w1), member("m2", etcd, w2), member("m3", etcd, w3)
        await m1.start(MemberState.READY)
        await m2.start(MemberState.JOINING)
        await m3.start(MemberState.READY)
        try:
            await until(lambda: w1.last.live == {"m1", "m2", "m3"})
            assert w1.last.ready == {"m1", "m3"}
            assert (w1.last.controller, w1.last.backup) == ("m1", "m2")  # in join order
            await m2.set_state(MemberState.READY)
            await until(lambda: w1.last.ready == {"m1", "m2", "m3"} == w3.last.ready)
            assert w1.last.revision == w3.last.revision  # the same view number everywhere

            await m2.set_state(MemberState.NOT_READY)  # drained: live, no new work
            await until(lambda: w1.last.ready == {"m1", "m3"})
            assert "m2" in w1.last.live
            await m2.stop()  # gone: leaves without being dead
            await until(lambda: "m2" not in w1.last.live)
            assert not any("m2" in v.dead for v in w1.views)

            m1.abandon()  # the controller stops refreshing: a crash
            await until(lambda: "m1" not in w3.last.live)
            assert any(v.dead == {"m1"} for v in w3.views)
            assert w3.last.controller == "m3"  # control passed on by itself
        finally:
            await m3.stop()
            await m1.stop()

    asyncio.run(main())


def test_a_member_that_loses_etcd_says_so(etcd: tuple[str, int], tmp_path: Path) -> None:
    async def main() -> None:
        w = Watcher()
        m = member("m1", etcd, w)
        await m.start(MemberState.READY)
        try:
            await until(lambda: bool(w.views) and "m1" in w.last.ready)
            subprocess.run(["pkill", "-STOP", "-f", f"listen-client-urls http://{etcd[0]}:"])
            await until(lambda: w.lost, timeout=15)
            assert m.lost
            subprocess.run(["pkill", "-CONT", "-f", f"listen-client-urls http://{etcd[0]}:"])
            await until(lambda: not m.lost, timeout=15)
            # back under a new lease as joining: no ring takes it until it says ready
            assert m.view.members["m1"].state is MemberState.JOINING
            assert "m1" not in m.view.ready
        finally:
            subprocess.run(["pkill", "-CONT", "-f", f"listen-client-urls http://{etcd[0]}:"])
            await m.stop()

    asyncio.run(main())
