"""``sipfarm up`` as an operator meets it: a local etcd and members on one SIP address.

The farm comes up with two ready members sharing the SIP port; a member made
not-ready shows so in ``sipfarm status``; a member that dies is started again;
SIGINT stops every process the farm started (found by PID) and ``up`` exits 0;
a second ``up`` on the same data directory (etcd restarting from its data) works.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sipp import _HARNESS, SIPFARM, fresh_loopback, options_probe, stop_process

from cluster.etcdproc import EtcdProcess, free_port
from cluster.membership import MemberInfo, MemberState, View
from sipfarm import cli

pytestmark = pytest.mark.timeout(90)

process_tree = _HARNESS.process_tree
read_proc_stat = _HARNESS.read_proc_stat

#: How long the farm gets to come up, to see a change, or to stop.
WAIT_S = 30.0


@dataclass(eq=False)
class Up:
    """A running ``sipfarm up``."""

    process: subprocess.Popen[bytes]
    data: Path
    host: str
    port: int
    log: Path

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SIPFARM), *args, "--data", str(self.data)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=WAIT_S,
        )

    def status(self) -> dict[str, Any] | None:
        """``sipfarm status --json``; None while the farm cannot say yet."""
        result = self.cli("status", "--json")
        return json.loads(result.stdout) if result.returncode == 0 else None

    def farm(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads((self.data / "farm.json").read_text())
        return value

    def until(self, what: str, check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + WAIT_S
        while not check():
            if self.process.poll() is not None:
                raise AssertionError(f"up exited {self.process.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"not in time: {what}\n{self.output()[-4000:]}")
            time.sleep(0.1)

    def states(self) -> dict[str, str]:
        status = self.status()
        return {} if status is None else {m["token"]: m["state"] for m in status["members"]}

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_up(tmp_path: Path, data: Path, members: int = 2) -> Up:
    host = fresh_loopback()
    log = tmp_path / f"up-{time.monotonic_ns()}.log"
    argv = [str(SIPFARM), "up", "--sip", f"{host}:5060", "--members", str(members)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*argv, "--data", str(data)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Up(process, data, host, 5060, log)


def stop_tree(up: Up) -> None:
    """Stop ``up`` and anything it left, by PID (what a failed test leaves behind)."""
    tree = process_tree(up.process.pid)[1:]
    stop_process(up.process)
    for child in tree:
        now = read_proc_stat(child.pid)
        if now is not None and now.start_ticks == child.start_ticks:
            os.kill(child.pid, signal.SIGKILL)


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[Up]:
    """``sipfarm up --members 2`` on a fresh loopback address, both members ready."""
    up = start_up(tmp_path, tmp_path / "farm")
    try:
        up.until("two ready members", lambda: up.states() == {"m1": "ready", "m2": "ready"})
        yield up
    finally:
        stop_tree(up)


def still_there(children: list[Any]) -> list[int]:
    """Those of ``children`` (a process_tree snapshot) that still run."""
    alive = []
    for child in children:
        now = read_proc_stat(child.pid)
        if now is not None and now.start_ticks == child.start_ticks:
            alive.append(child.pid)
    return alive


def member_status(farm: Up, token: str) -> dict[str, Any]:
    """GET /status of member ``token`` (its admin endpoint, from farm.json)."""
    host, _, port = farm.farm()["members"][token]["http"].rpartition(":")
    with urllib.request.urlopen(f"http://{host}:{port}/status", timeout=5) as answer:
        value: dict[str, Any] = json.loads(answer.read())
    return value


def test_up_serves_drains_and_stops_every_process(farm: Up) -> None:
    answer = options_probe(farm.host, farm.port, timeout_s=5.0)
    assert answer is not None and answer.startswith(b"SIP/2.0 200 "), answer
    if os.geteuid() == 0:  # the kernel steers each member's responses to its socket
        slots = {t: member_status(farm, t)["view"]["steering"] for t in ("m1", "m2")}
        assert slots == {"m1": 0, "m2": 1}, farm.output()[-4000:]

    drained = farm.cli("member", "not-ready", "m1")
    assert drained.returncode == 0, drained.stderr
    farm.until("m1 not-ready", lambda: farm.states() == {"m1": "not-ready", "m2": "ready"})
    status = farm.status()
    assert status is not None
    shares = {m["token"]: m["share"] for m in status["members"]}
    assert shares == {"m1": None, "m2": 1.0}  # new work goes to the ready member only

    undrained = farm.cli("member", "ready", "m1")
    assert undrained.returncode == 0, undrained.stderr
    farm.until("m1 ready again", lambda: farm.states() == {"m1": "ready", "m2": "ready"})

    unknown = farm.cli("member", "ready", "m9")
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("sipfarm: no member m9")

    described = farm.farm()
    children = process_tree(farm.process.pid)[1:]
    pids = {c.pid for c in children}
    assert described["etcd_pid"] in pids
    assert {m["pid"] for m in described["members"].values()} <= pids

    farm.process.send_signal(signal.SIGINT)
    assert farm.process.wait(WAIT_S) == 0, farm.output()[-4000:]
    assert still_there(children) == []
    assert farm.farm()["supervisor"] is None
    stopped = farm.cli("status")
    assert stopped.returncode == 1 and "not running" in stopped.stderr


def test_up_restarts_a_member_that_dies_and_starts_again_on_its_data(
    farm: Up, tmp_path: Path
) -> None:
    victim = farm.farm()["members"]["m2"]["pid"]
    os.kill(victim, signal.SIGKILL)
    farm.until(
        "m2 started again",
        lambda: (
            farm.farm()["members"]["m2"]["pid"] not in (None, victim)
            and farm.states() == {"m1": "ready", "m2": "ready"}
        ),
    )
    assert "member m2 died (killed by SIGKILL)" in farm.output()

    busy = farm.cli("up", "--sip", f"{fresh_loopback()}:5060")
    assert busy.returncode == 1 and "in use" in busy.stderr

    etcd = farm.farm()["etcd"]
    farm.process.send_signal(signal.SIGTERM)
    assert farm.process.wait(WAIT_S) == 0, farm.output()[-4000:]

    again = start_up(tmp_path, farm.data)
    try:
        again.until("two ready members again", lambda: again.states().get("m1") == "ready")
        again.until("m2 ready too", lambda: again.states() == {"m1": "ready", "m2": "ready"})
        assert again.farm()["etcd"] == etcd  # the same address when it is free
        again.process.send_signal(signal.SIGINT)
        assert again.process.wait(WAIT_S) == 0, again.output()[-4000:]
    finally:
        stop_tree(again)


def test_etcd_process_starts_stops_and_restarts_on_its_data(tmp_path: Path) -> None:
    first = EtcdProcess(tmp_path / "etcd")
    with first:
        assert first.running
        pid = first.pid
    assert not first.running
    assert pid is not None and read_proc_stat(pid) is None

    second = EtcdProcess(tmp_path / "etcd")  # other ports: a single node never dials its peer
    with second:
        assert second.running
    assert (tmp_path / "etcd.log").exists()


def test_member_action_on_an_unreachable_member_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gone = ("127.0.0.1", free_port("127.0.0.1"))  # nothing listens there
    member = MemberInfo("m1", ("127.0.0.1", 7001), frozenset({"frontend"}), MemberState.READY, 3)
    view = View(3, {"m1": member._replace(http=gone)})
    monkeypatch.setattr(cli, "read_view", lambda etcd: view)

    status = cli.main(["member", "not-ready", "m1", "--etcd", "127.0.0.1:2379"])

    out, err = capsys.readouterr()
    assert status == 1 and out == ""
    assert err.startswith(f"sipfarm: cannot reach 127.0.0.1:{gone[1]}") and err.count("\n") == 1
