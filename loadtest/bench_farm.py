"""The farm's relay cost: the same loads through one member and through the one-host farm.

    .venv/bin/python loadtest/bench_farm.py [--reg-rate 500] [--call-rate 200]
                                            [--duration 10] [--hold 1] [--accounts 2000]
                                            [--configs single,pair,farm1,farm,farm-hash,farm-nosync]
                                            [--runs 2] [--equal-load]
                                            [--loads registrations,calls] [--profile DIR]

Issue 5 item 9 and its target "CPU per call in the farm with relaying <= 1.3 x CPU per
call on a single member".  The configurations run one after the other (they never
share the CPU), each on fresh loopback addresses and a freshly provisioned data
directory; with ``--runs N`` the whole sequence repeats, so that other work on the
machine falls on every configuration alike:

- ``single``: ``sipfarm member --sip H:5060 --data DIR --http ...`` (no etcd: no farm;
  bindings in memory only);
- ``farm1`` (only with ``--configs``): ``sipfarm up --members 1``, the farm without a
  relay: etcd, the router, bindings written to the accounts' storage before the 200;
  farm over farm1 is the relaying alone, farm1 over single the rest of the farm edge;
- ``farm``: ``sipfarm up --sip H:5060 --members 2 --data DIR``: etcd and two members
  bound to the same address with SO_REUSEPORT, the kernel steering each datagram
  to its member (sipfarm/transport/steering.py: a response by its Via branch, a
  request by its Call-ID's bucket on the ring) and spreading the rest by 4-tuple.
  SIPp sends with one socket per call (``-t un``) so that calls spread; the UAS is
  one socket.
- ``pair`` (only with ``--configs``): ``--members`` single members at once, each on its
  own address with its own SIPp UAC and UAS at its share of the rate: the farm's
  processes without the farm (no etcd, no router, no relay); pair over single is what
  one more process costs on this machine, farm over pair what the farm adds to that;
- ``farm-hash`` (only with ``--configs``): ``farm`` with ``--no-steering``, every
  datagram placed by the kernel's hash (and relayed to its member);
- ``farm-nosync`` (only with ``--configs``): ``farm`` with ``--no-sync``, bindings not
  fsynced before their 200 OK; farm over farm-nosync is what durability costs (issue 6:
  durable registrations at >= 80 % of the rate without; run the registrations above
  what the farm passes, ``--reg-rate 1500``, to compare the rates reached).

Each runs, at a fixed rate that both pass (not a sweep), after a short warm-up of each:

1. registrations: REGISTER -> 401 -> REGISTER with Authorization -> 200
   (``register_auth_uac.xml``), cycling over the accounts, each with one contact;
2. calls: the callee registers its UAS (``register_contact.xml``), then
   INVITE -> 407 -> ACK -> INVITE with Proxy-Authorization -> 100/180/200 -> ACK ->
   hold -> BYE -> 200 (``call_uac_auth.xml`` against ``call_uas.xml``).  The calls are
   challenged in both configurations: ``sipfarm up`` has no ``--trusted``, and the
   baseline must carry the same load.

Measured per load: the rate achieved, failed %, p50/p95/p99 response times (SIPp's
coarse clock, see loadtest/README.md), the CPU (utime + stime from /proc/PID/stat) of
every member process, summed and per member, in microseconds per call (per
registration), each member's farm counters from ``GET /status`` (relayed_in,
relayed_out, emitted, lookups_sent, lookups_answered), and the relay ratio: packets
relayed between members over packets the farm's sockets received (each farm
member's ``received`` counter; a single member has none, and then the count of
every message the UAC and the UAS sent, retransmissions included, stands in).
Last, farm CPU per call over single CPU per call, against the target of 1.3 (and the
farm1 ratios when it ran).

``--equal-load`` runs the farm configurations at ``--members`` times the rates, so that
each member process is as busy as the single member.  CPU per call depends on how busy
a process is: an idle process pays a wakeup (epoll, the scheduler, and on a VM the
virtual CPU's own exit and entry) for nearly every packet, a busy one reads several
per wakeup.  Measured here (2026-12-04), the single member took 2,400-2,900 us per
call at 200 calls/s and 1,550-1,840 us at 350/s.  At the same total rate each farm
member is half as busy as the single member, and pays that difference on top of the
relays; at equal load per process the ratio is the relaying alone (plus the farm's
edge: farm1 over single).  Both are printed by the runs that ask for them; the
default, the same total rate, is the issue's reading ("the same loads").

``--profile DIR`` records every member with py-spy (``.venv/bin/py-spy``, sampling
without pausing them) during each measured load, as collapsed stacks
``DIR/<config>-<load>-<run>-<member>.txt`` (one stack a line, then its sample count);
py-spy's own cost lands in the CPU figures of that run, so quote those from a run
without it.

The issue asks for Kamailio beside sipfarm in its benchmarks in general; this one
compares the farm with a single member only (bench_register.py and bench_calls.py
have Kamailio).  Tables to stdout, progress to stderr, everything to
loadtest/results/farm-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import math
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench_register
import harness

logger = logging.getLogger("bench_farm")

#: single: one member, no farm; farm1: ``sipfarm up --members 1`` (etcd, bindings written
#: to storage, no relays); farm: ``sipfarm up --members N`` (N = --members, 2), bindings
#: fsynced by group commit before each 200 OK; farm-nosync: the same with ``--no-sync``
#: (bindings survive a member's death, not the host's): durability's cost.
CONFIGS = ("single", "pair", "farm1", "farm", "farm-hash", "farm-nosync")
#: Issue 6: durable registrations at >= 80 % of the rate without durability.
DURABLE_TARGET = 0.8
DOMAIN = bench_register.DOMAIN
#: Where the registration contacts point (nothing listens: a registrar never calls them).
CONTACT_PORT = 5999
#: The farm counters reported per member (sipfarm/farm.py, cluster/link.py).
FARM_COUNTERS = (
    "received",
    "relayed_in",
    "relayed_out",
    "emitted",
    "lookups_sent",
    "lookups_answered",
)
#: The relay cost target of issue 5: farm CPU per call <= 1.3 x a single member's.
TARGET_RATIO = 1.3
#: Seconds for the farm to come up (etcd, two members, a ring of two).
FARM_READY_S = 30.0
#: Seconds after SIPp stops before the CPU is read: the server's last timers and answers.
SETTLE_S = 1.0
STATUS_TIMEOUT_S = 2.0
UP_STOP_S = 20.0
PY_SPY = harness.REPO / ".venv" / "bin" / "py-spy"
#: py-spy's samples per second (its default is 100).
PROFILE_RATE = 250
#: SIPp's -max_socket with -t un: calls open at once, with room (rate x (1 + hold) at most).
MAX_SOCKETS = 10_000


# --------------------------------------------------------------------- addresses


def fresh_loopback(port: int = harness.SIP_PORT) -> str:
    """A random 127.128-127.191.x.y address whose ``port`` is free on UDP and TCP.

    Another range than the integration tests' (127.64-127.127, tests/integration/sipp.py)
    so that a benchmark and a test running at once never meet.
    """
    for _ in range(100):
        a, b, c = 128 + secrets.randbelow(64), secrets.randbelow(256), 1 + secrets.randbelow(254)
        host = f"127.{a}.{b}.{c}"
        if harness.port_is_free(host, port):
            return host
    raise harness.ServerError("no free loopback address found")


# ---------------------------------------------------------------------- accounts


@dataclass(frozen=True, slots=True)
class Accounts:
    """``count`` accounts ``u00000``... at example.com in ``root/data``, and SIPp's CSVs."""

    root: Path
    count: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def callee(self) -> int:
        """The account of the UAS (the others call it and register)."""
        return self.count - 1

    def registrations_csv(self, contact_host: str) -> Path:
        path = self.root / "register.csv"
        lines = ["SEQUENTIAL"]
        for i in range(self.callee):
            user = bench_register.user_name(i)
            lines.append(
                f"{user};{DOMAIN};{bench_register.password(i)};{user}@{contact_host}:{CONTACT_PORT}"
            )
        path.write_text("\n".join(lines) + "\n")
        return path

    def calls_csv(self) -> Path:
        """The callers in turn, each calling the callee: caller;domain;password;callee."""
        path = self.root / "calls.csv"
        callee = bench_register.user_name(self.callee)
        lines = ["SEQUENTIAL"]
        for i in range(self.callee):
            user, secret = bench_register.user_name(i), bench_register.password(i)
            lines.append(f"{user};{DOMAIN};{secret};{callee}")
        path.write_text("\n".join(lines) + "\n")
        return path


def provision(root: Path, count: int) -> Accounts:
    """A fresh data directory with ``count`` accounts, as ``sipfarm account add`` writes them
    (the account store's layout and settings bytes, without per-file fsync: a scratch copy).

    Fresh for each configuration: a farm member writes bindings into the accounts'
    info files, and a callee's stale binding from an earlier run would fork its calls.
    """
    from mail.layout import Layout
    from mail.settings import AccountSettings
    from mail.store import AccountStore

    accounts = Accounts(root, count)
    root.mkdir(parents=True)
    AccountStore(accounts.data).add_domain(DOMAIN)
    layout = Layout(accounts.data)
    for i in range(count):
        user = bench_register.user_name(i)
        settings = layout.settings_path(user, DOMAIN)
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_bytes(bytes(AccountSettings.new(user, DOMAIN, bench_register.password(i))))
    return accounts


# ------------------------------------------------------------------ the servers


@dataclass(frozen=True, slots=True)
class Member:
    """One member process and its admin endpoint."""

    token: str
    pid: int
    http: tuple[str, int]

    def cpu_ticks(self) -> int:
        stat = harness.read_proc_stat(self.pid)
        return stat.cpu_ticks if stat is not None else 0

    def counters(self) -> dict[str, int]:
        host, port = self.http
        url = f"http://{host}:{port}/status"
        try:
            with urllib.request.urlopen(url, timeout=STATUS_TIMEOUT_S) as answer:
                status = json.loads(answer.read())
        except (OSError, ValueError) as exc:
            logger.warning("%s: GET /status failed: %s", self.token, exc)
            return {}
        return {k: v for k, v in status.get("counters", {}).items() if isinstance(v, int)}

    def status(self) -> dict[str, Any]:
        host, port = self.http
        with urllib.request.urlopen(f"http://{host}:{port}/status", timeout=1) as answer:
            value: dict[str, Any] = json.loads(answer.read())
            return value


@dataclass(slots=True)
class Server:
    """A configuration under test: where it listens and its member processes."""

    name: str
    argv: tuple[str, ...]
    host: str
    port: int
    members: list[Member]
    #: The process we started (the member, or the ``up`` supervisor).
    process: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None and all(
            harness.read_proc_stat(m.pid) is not None for m in self.members
        )

    def describe(self, what: str) -> str:
        tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
        return f"{self.name} (pid {self.process.pid}) {what}\n--- its log, last lines:\n{tail}"


def _spawn(argv: Sequence[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        # Its own session: a Ctrl-C on the benchmark reaches us, and we stop it in order.
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            cwd=cwd, start_new_session=True,
        )  # fmt: skip


def _wait(
    check: Any, timeout_s: float, server: Server | subprocess.Popen[bytes], what: str
) -> None:
    process = server.process if isinstance(server, Server) else server
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise harness.ServerError(f"exited with status {process.returncode} ({what})")
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            if check():
                return
        if time.monotonic() > deadline:
            raise harness.ServerError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.1)


@contextlib.contextmanager
def single_member(accounts: Accounts, workdir: Path, token: str = "m") -> Iterator[Server]:
    """``sipfarm member`` alone (bench_register's baseline), with an admin endpoint."""
    host = fresh_loopback()
    http = (host, harness.free_port(host))
    argv = (
        str(harness.SIPFARM), "member", "--sip", f"{host}:{harness.SIP_PORT}",
        "--data", str(accounts.data), "--http", f"{http[0]}:{http[1]}",
    )  # fmt: skip
    log = workdir / f"single-{token}.log"
    process = _spawn(argv, log, workdir)
    server = Server(f"single-{token}" if token != "m" else "single", argv, host,
                    harness.SIP_PORT, [Member(token, process.pid, http)], process, log)  # fmt: skip
    try:
        try:
            _wait(lambda: harness.options_probe(host, harness.SIP_PORT), harness.READY_TIMEOUT_S,
                  server, "an answer to OPTIONS")  # fmt: skip
        except harness.ServerError as exc:
            raise harness.ServerError(server.describe(str(exc))) from None
        logger.info("single: pid %d answers on %s:%d", process.pid, host, harness.SIP_PORT)
        yield server
    finally:
        status = harness.stop_process(process)
        logger.info("single: pid %d stopped, status %s", process.pid, status)


def _farm_members(data: Path) -> list[Member] | None:
    """The members farm.json names, once every one has a PID."""
    farm = json.loads((data / "farm.json").read_text())
    members = []
    for token, m in sorted(farm["members"].items()):
        if not isinstance(m.get("pid"), int):
            return None
        host, _, port = m["http"].rpartition(":")
        members.append(Member(token, m["pid"], (host, int(port))))
    return members


@contextlib.contextmanager
def one_host_farm(
    accounts: Accounts, workdir: Path, members: int, name: str = "farm", *extra: str
) -> Iterator[Server]:
    """``sipfarm up --members N``: ready once every member is ready in a ring of N.

    Stopped with SIGINT to ``up`` (it stops its members, then etcd); whatever is left
    after that (a member, etcd) is killed by the PID farm.json gave.
    """
    host = fresh_loopback()
    data = accounts.data
    argv = (
        str(harness.SIPFARM), "up", "--sip", f"{host}:{harness.SIP_PORT}",
        "--members", str(members), "--data", str(data), *extra,
    )  # fmt: skip
    log = workdir / "farm.log"
    process = _spawn(argv, log, workdir)
    server = Server(name, argv, host, harness.SIP_PORT, [], process, log)
    seen: dict[int, int] = {}  # pid -> start ticks, of everything farm.json named

    def remember() -> None:
        with contextlib.suppress(OSError, ValueError, KeyError):
            farm = json.loads((data / "farm.json").read_text())
            pids = [m.get("pid") for m in farm["members"].values()] + [farm.get("etcd_pid")]
            for pid in pids:
                stat = harness.read_proc_stat(pid) if isinstance(pid, int) else None
                if stat is not None and stat.pid not in seen:
                    seen[stat.pid] = stat.start_ticks

    def ready() -> bool:
        remember()
        found = _farm_members(data)
        if found is None or len(found) != members:
            return False
        for m in found:
            status = m.status()
            if status["state"] != "ready" or len(status["view"]["ring"]) != members:
                return False
        server.members = found
        return harness.options_probe(host, harness.SIP_PORT) is not None

    try:
        try:
            _wait(ready, FARM_READY_S, server, f"{members} members ready in a ring of {members}")
        except harness.ServerError as exc:
            raise harness.ServerError(server.describe(str(exc))) from None
        logger.info(
            "%s: up pid %d, members %s on %s:%d",
            name,
            process.pid,
            ", ".join(f"{m.token} pid {m.pid}" for m in server.members),
            host,
            harness.SIP_PORT,
        )
        yield server
    finally:
        remember()
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(UP_STOP_S)
            except subprocess.TimeoutExpired:
                logger.warning("up pid %d still there after SIGINT: SIGKILL", process.pid)
        status = harness.stop_process(process)
        for pid, start in seen.items():
            now = harness.read_proc_stat(pid)
            if now is not None and now.start_ticks == start:
                logger.warning("pid %d outlived 'sipfarm up': SIGKILL", pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        logger.info("%s: up pid %d stopped, status %s", name, process.pid, status)


# -------------------------------------------------------------------- the loads


@dataclass(frozen=True, slots=True)
class MemberSample:
    """One member's CPU and farm counters over one load."""

    token: str
    pid: int
    cpu_s: float
    counters: dict[str, int]


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One load (registrations or calls) through one configuration."""

    config: str
    load: str
    rate: int
    planned: int
    successful: int
    failed: int
    retransmissions: int
    achieved_rate: float
    rtt_ms: harness.Percentiles | None
    #: Messages the farm received: everything SIPp (UAC, and UAS for calls) sent.
    packets_in: int
    members: tuple[MemberSample, ...]
    wall_s: float
    sipp_cpu_pct: float
    failures: tuple[str, ...]
    uas_successful: int | None = None
    uas_failed: int | None = None
    #: 1-minute load average when the load started: other work on the machine skews it.
    loadavg: float = 0.0
    run: int = 1

    @property
    def cpu_s(self) -> float:
        return sum(m.cpu_s for m in self.members)

    @property
    def cpu_us_per_call(self) -> float | None:
        return 1e6 * self.cpu_s / self.successful if self.successful else None

    @property
    def relayed(self) -> int:
        return sum(m.counters.get("relayed_out", 0) for m in self.members)

    @property
    def relay_ratio(self) -> float | None:
        return self.relayed / self.packets_in if self.packets_in else None

    @property
    def failed_pct(self) -> float:
        return 100.0 * self.failed / self.planned if self.planned else 0.0

    @property
    def passed(self) -> bool:
        return not self.failures


def _counts_sent(workdir: Path) -> int:
    """Messages one SIPp run sent, first transmissions and retransmissions (-trace_counts)."""
    total = 0
    for path in workdir.glob("*_counts.csv"):
        counts = harness.read_counts_csv(path)
        total += sum(v for k, v in counts.items() if k.endswith(("_Sent", "_Retrans")))
    return total


def _sipp_argv(target: str | None, scenario: Path, host: str, port: int, *args: str) -> list[str]:
    """A side SIPp (callee registration, UAS) on ``host:port``, with stat and counts files."""
    sipp = shutil.which("sipp") or "/usr/bin/sipp"
    return [
        sipp, *([target] if target else []), "-sf", str(scenario),
        "-i", host, "-bind_local", "-p", str(port), "-ci", host,
        "-buff_size", str(harness.SIPP_BUFFER_BYTES),
        "-nostdin", "-trace_stat", "-stf", "stat.csv", "-fd", "1", "-trace_counts",
        *args,
    ]  # fmt: skip


def _run_side(argv: Sequence[str], workdir: Path, wait_s: float) -> dict[str, str]:
    """Run a side SIPp to its end (stopped by PID after ``wait_s``); its last stat row."""
    workdir.mkdir(parents=True)
    process = _spawn(argv, workdir / "stdout", workdir)
    try:
        process.wait(wait_s)
    except subprocess.TimeoutExpired:
        pass
    finally:
        harness.stop_process(process)
    stat = workdir / "stat.csv"
    return harness.read_stat_csv(stat) if stat.exists() else {}


class Uas:
    """The callee: registers its address through the server, then answers the calls."""

    def __init__(self, server: Server, accounts: Accounts, hold_s: float):
        self.server = server
        self.accounts = accounts
        self.hold_s = hold_s
        self.host = fresh_loopback()
        self.successful = 0
        self.failed = 0
        self.sent = 0

    @contextlib.contextmanager
    def __call__(self, rate: int, calls: int, workdir: Path) -> Iterator[None]:
        port = harness.free_port(self.host)
        i = self.accounts.callee
        user = bench_register.user_name(i)
        csv_path = workdir / "callee.csv"
        workdir.mkdir(parents=True)
        csv_path.write_text(
            f"SEQUENTIAL\n{user};{DOMAIN};{bench_register.password(i)};{user}@{self.host}:{port}\n"
        )
        target = f"{self.server.host}:{self.server.port}"
        row = _run_side(
            _sipp_argv(target, harness.SCENARIOS / "register_contact.xml", self.host, port,
                       "-inf", str(csv_path), "-auth_uri", DOMAIN, "-m", "1", "-timeout", "10s",
                       "-recv_timeout", "5000", "-max_non_invite_retrans", "3"),
            workdir / "register", 20,
        )  # fmt: skip
        if int(row.get("SuccessfulCall(C)", 0)) != 1:
            raise harness.SippError(f"the callee's REGISTER through {self.server.name} failed")
        timeout = math.ceil(2 * calls / rate + self.hold_s + 20)
        uasdir = workdir / "uas"
        uasdir.mkdir()
        argv = _sipp_argv(None, harness.SCENARIOS / "call_uas.xml", self.host, port,
                          "-m", str(calls), "-timeout", f"{timeout}s")  # fmt: skip
        process = _spawn(argv, uasdir / "stdout", uasdir)
        try:
            deadline = time.monotonic() + 5
            while harness.port_is_free(self.host, port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise harness.SippError(f"the SIPp UAS did not bind {self.host}:{port}")
                time.sleep(0.02)
            yield
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(self.hold_s + 5)
        finally:
            harness.stop_process(process)
        stat = uasdir / "stat.csv"
        row = harness.read_stat_csv(stat) if stat.exists() else {}
        self.successful = int(row.get("SuccessfulCall(C)", 0))
        self.failed = int(row.get("FailedCall(C)", 0))
        self.sent = _counts_sent(uasdir)


@dataclass(frozen=True, slots=True)
class Load:
    """A load: its scenario, rate, duration, and what a call of it is."""

    name: str  # "registrations" or "calls"
    unit: str  # "reg" or "call"
    rate: int
    duration_s: float
    hold_s: float = 0.0
    extra: tuple[str, ...] = ()
    scenario: Path = field(default=harness.SCENARIOS / "register_auth_uac.xml")


@contextlib.contextmanager
def profiled(server: Server, load: Load, profile: Path | None, tag: str) -> Iterator[None]:
    """py-spy on every member for the load's duration (when ``profile`` is a directory).

    Collapsed stacks (``--format raw``) into ``profile/<tag>-<member>.txt``, one line per
    stack with its sample count; ``--nonblocking`` so the members are not paused.
    """
    if profile is None:
        yield
        return
    profile.mkdir(parents=True, exist_ok=True)
    spies = []
    for m in server.members:
        argv = (
            str(PY_SPY), "record", "--pid", str(m.pid),
            "--duration", str(math.ceil(load.duration_s)), "--rate", str(PROFILE_RATE),
            "--format", "raw", "--nonblocking",
            "--output", str(profile / f"{tag}-{m.token}.txt"),
        )  # fmt: skip
        spies.append(_spawn(argv, profile / f"{tag}-{m.token}.log", profile))
    try:
        yield
    finally:
        for spy in spies:
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(load.duration_s + 10)
            harness.stop_process(spy)


def run_load(server: Server, load: Load, accounts: Accounts, workdir: Path,
             sipp_host: str, profile: Path | None = None) -> LoadResult:  # fmt: skip
    """Run ``load`` once through ``server`` and measure it."""
    calls = harness.step_calls(load.rate, load.duration_s)
    run = harness.SippRun(
        scenario=load.scenario,
        target_host=server.host,
        target_port=server.port,
        local_host=sipp_host,
        local_port=harness.free_port(sipp_host),
        rate=load.rate,
        calls=calls,
        limit=max(200, math.ceil(load.rate * (1 + load.hold_s))),
        timeout_s=math.ceil(2 * calls / load.rate + 2 + 5 + load.hold_s),
        # One socket per call: the kernel spreads the calls over the farm's members.
        # SIPp refuses -t un when its socket cap (50000) is above the open-file limit.
        transport="un",
        extra=(*load.extra, "-max_socket", str(MAX_SOCKETS)),
    )
    loadavg = os.getloadavg()[0]
    uas = Uas(server, accounts, load.hold_s) if load.name == "calls" else None
    around = uas(load.rate, calls, workdir / "callee") if uas else contextlib.nullcontext()
    with around:
        counters_before = {m.pid: m.counters() for m in server.members}
        cpu_before = {m.pid: m.cpu_ticks() for m in server.members}
        started = time.monotonic()
        run_name = workdir.parent.name.partition("-")[0]  # run1-farm -> run1
        with profiled(server, load, profile, f"{server.name}-{load.name}-{run_name}"):
            stats = harness.run_sipp(run, workdir / "uac")
    wall_s = time.monotonic() - started
    time.sleep(SETTLE_S)
    cpu_after = {m.pid: m.cpu_ticks() for m in server.members}
    if not server.alive():
        raise harness.ServerError(server.describe(f"a process died during the {load.name}"))
    samples = []
    for m in server.members:
        after = m.counters()
        counters = {k: after.get(k, 0) - counters_before[m.pid].get(k, 0) for k in FARM_COUNTERS}
        cpu_s = (cpu_after[m.pid] - cpu_before[m.pid]) / harness.CLOCK_TICKS
        samples.append(MemberSample(m.token, m.pid, cpu_s, counters))
    # what the farm's sockets received (its members count it), else what SIPp sent
    received = sum(m.counters.get("received", 0) for m in samples)
    packets_in = received or _counts_sent(workdir / "uac") + (uas.sent if uas else 0)
    failures = list(harness.judge(stats, load.rate, load.duration_s, harness.PassCriteria()))
    if uas is not None and (uas.successful != calls or uas.failed):
        failures.append(f"UAS: {uas.successful}/{calls} calls, {uas.failed} failed")
    return LoadResult(
        config=server.name,
        load=load.name,
        rate=load.rate,
        planned=calls,
        successful=stats.successful,
        failed=stats.failed,
        retransmissions=stats.retransmissions,
        achieved_rate=stats.achieved_rate,
        rtt_ms=harness.percentiles(stats.rtts_ms),
        packets_in=packets_in,
        members=tuple(samples),
        wall_s=wall_s,
        sipp_cpu_pct=100.0 * stats.cpu_s / wall_s,
        failures=tuple(failures),
        uas_successful=uas.successful if uas else None,
        uas_failed=uas.failed if uas else None,
        loadavg=loadavg,
    )


@contextlib.contextmanager
def start(config: str, accounts: Accounts, workdir: Path, members: int) -> Iterator[list[Server]]:
    """The servers of ``config``: one, but ``members`` single members for ``pair``."""
    if config == "single":
        with single_member(accounts, workdir) as server:
            yield [server]
    elif config == "pair":
        with contextlib.ExitStack() as stack:
            yield [
                stack.enter_context(single_member(accounts, workdir, f"p{i}"))
                for i in range(1, members + 1)
            ]
    elif config == "farm1":
        with one_host_farm(accounts, workdir, 1, "farm1") as server:
            yield [server]
    elif config == "farm-nosync":
        with one_host_farm(accounts, workdir, members, config, "--no-sync") as server:
            yield [server]
    elif config == "farm-hash":
        with one_host_farm(accounts, workdir, members, config, "--no-steering") as server:
            yield [server]
    else:
        with one_host_farm(accounts, workdir, members) as server:
            yield [server]


def _worst(parts: list[harness.Percentiles]) -> harness.Percentiles | None:
    """Each percentile the worse of the parts' (SIPp's samples cannot be merged here)."""
    if not parts:
        return None
    fields = ("p50", "p95", "p99", "mean", "max")
    worst = (max(getattr(p, f) for p in parts) for f in fields)
    return harness.Percentiles(sum(p.samples for p in parts), *worst)


def run_loads(servers: list[Server], load: Load, accounts: Accounts, workdir: Path,
              sipp_host: str, profile: Path | None = None) -> LoadResult:  # fmt: skip
    """``load`` through one server; or split evenly over independent servers (``pair``),
    at the same time, each with its own SIPp, as one result."""
    if len(servers) == 1:
        return run_load(servers[0], load, accounts, workdir, sipp_host, profile)
    share = dataclasses.replace(load, rate=max(1, load.rate // len(servers)))
    with concurrent.futures.ThreadPoolExecutor(len(servers)) as pool:
        parts = list(pool.map(
            lambda i: run_load(servers[i], share, accounts, workdir / f"{servers[i].name}",
                               fresh_loopback(), profile),
            range(len(servers)),
        ))  # fmt: skip
    rtts = [p.rtt_ms for p in parts if p.rtt_ms is not None]
    return dataclasses.replace(
        parts[0],
        config="pair",
        rate=share.rate * len(parts),
        planned=sum(p.planned for p in parts),
        successful=sum(p.successful for p in parts),
        failed=sum(p.failed for p in parts),
        retransmissions=sum(p.retransmissions for p in parts),
        achieved_rate=sum(p.achieved_rate for p in parts),
        rtt_ms=_worst(rtts),
        packets_in=sum(p.packets_in for p in parts),
        members=tuple(m for p in parts for m in p.members),
        wall_s=max(p.wall_s for p in parts),
        sipp_cpu_pct=sum(p.sipp_cpu_pct for p in parts),
        failures=tuple(f for p in parts for f in p.failures),
        uas_successful=sum(p.uas_successful or 0 for p in parts),
        uas_failed=sum(p.uas_failed or 0 for p in parts),
    )


def measure(config: str, loads: Sequence[Load], args: argparse.Namespace,
            workdir: Path) -> tuple[list[LoadResult], str | None]:  # fmt: skip
    """Start ``config`` on fresh accounts, warm each load up, then measure each once."""
    workdir.mkdir(parents=True)
    accounts = provision(workdir / "accounts", args.accounts)
    sipp_host = fresh_loopback()
    results: list[LoadResult] = []
    loadavg = os.getloadavg()[0]
    if loadavg > 0.5 * (os.cpu_count() or 1):
        logger.warning("load average %.1f: other work may skew the numbers", loadavg)
    # --equal-load: each farm member carries what the single member carries
    spread = config in ("pair", "farm", "farm-hash", "farm-nosync")
    scale = args.members if args.equal_load and spread else 1
    try:
        with start(config, accounts, workdir, args.members) as servers:
            for load in loads:
                load = dataclasses.replace(
                    load,
                    rate=load.rate * scale,
                    extra=(
                        *load.extra,
                        "-inf",
                        str(
                            accounts.registrations_csv(sipp_host)
                            if load.name == "registrations"
                            else accounts.calls_csv()
                        ),
                    ),
                )
                if args.warmup > 0:
                    warm = dataclasses.replace(load, duration_s=args.warmup)
                    logger.info("%s: warm-up, %s at %d/s for %.0f s", config, load.name,
                                load.rate, args.warmup)  # fmt: skip
                    result = run_loads(servers, warm, accounts, workdir / f"warm-{load.name}",
                                       sipp_host)  # fmt: skip
                    if not result.passed:
                        logger.warning("%s: warm-up %s: %s", config, load.name,
                                       "; ".join(result.failures))  # fmt: skip
                    time.sleep(load.hold_s + 1)
                logger.info("%s: %s at %d/s for %.0f s", config, load.name, load.rate,
                            load.duration_s)  # fmt: skip
                result = run_loads(servers, load, accounts, workdir / load.name, sipp_host,
                                   args.profile)  # fmt: skip
                logger.info("%s: %s", config, _progress(result))
                results.append(result)
                time.sleep(load.hold_s + 1)
    except (harness.ServerError, harness.SippError) as exc:
        logger.error("%s: %s", config, exc)
        return results, str(exc)
    return results, None


# ------------------------------------------------------------------------ report


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _progress(r: LoadResult) -> str:
    verdict = "pass" if r.passed else "FAIL: " + "; ".join(r.failures)
    return (
        f"{r.load} {r.rate}/s -> {r.achieved_rate:.0f}/s, {r.failed} failed, "
        f"{_us(r.cpu_us_per_call)} us/{'reg' if r.load == 'registrations' else 'call'}, "
        f"relayed {r.relayed}/{r.packets_in}, {verdict}"
    )


def format_report(results: Sequence[LoadResult], errors: dict[str, str],
                  args: argparse.Namespace, run: int = 1) -> str:  # fmt: skip
    """The loads side by side, the members of each, and the ratio against the target."""
    res = harness.rtt_resolution_ms()
    lines = [
        f"== run {run} of {args.runs}",
        f"== farm vs single member (issue 5 item 9): sipfarm only, no Kamailio in this one "
        f"(bench_register.py and bench_calls.py compare with Kamailio); {os.cpu_count()} CPUs",
        f"   single: sipfarm member --sip H:5060 --data DIR;  farm: sipfarm up --sip H:5060 "
        f"--members {args.members} --data DIR (SO_REUSEPORT, SIPp -t un: one socket per call)",
        f"   registrations: REGISTER/401/REGISTER/200; calls: INVITE/407/ACK/INVITE/100/180/"
        f"200/ACK, hold {args.hold:g} s, BYE/200 (challenged: 'up' has no --trusted)",
        f"   response times at SIPp's clock resolution ({res:.0f} ms); CPU = utime+stime of "
        f"the member processes (not etcd, not the up supervisor)",
        *(
            [
                f"   --equal-load: farm and farm-nosync run at {args.members} x the rate, each "
                f"member as busy as the single member"
            ]
            if args.equal_load
            else []
        ),
        "",
        f"{'config':>7} {'load':>13} {'rate/s':>6} {'achieved':>8} {'ok':>6} {'fail%':>6} "
        f"{'retr':>5} {'p50ms':>6} {'p95ms':>6} {'p99ms':>6} {'us/call':>7} {'CPU%':>5} "
        f"{'relay%':>6} {'load':>4} verdict",
    ]
    for r in results:
        p50, p95, p99, _ = harness._rtt_cells(r.rtt_ms)
        ratio = r.relay_ratio
        relay = "-" if ratio is None or r.config == "single" else f"{100 * ratio:.1f}"
        verdict = "pass" if r.passed else "FAIL: " + "; ".join(r.failures)
        lines.append(
            f"{r.config:>7} {r.load:>13} {r.rate:>6} {r.achieved_rate:>8.0f} {r.successful:>6} "
            f"{r.failed_pct:>6.2f} {r.retransmissions:>5} {p50:>6} {p95:>6} {p99:>6} "
            f"{_us(r.cpu_us_per_call):>7} {100 * r.cpu_s / r.wall_s:>5.0f} {relay:>6} "
            f"{r.loadavg:>4.1f} {verdict}"
        )
    lines += [
        "",
        "== per member (CPU per call of the load's calls; counters over the load)",
        f"{'config':>7} {'load':>13} {'member':>6} {'pid':>7} {'CPU s':>6} {'us/call':>7} "
        + " ".join(f"{k:>16}" for k in FARM_COUNTERS),
    ]
    for r in results:
        for m in r.members:
            per = 1e6 * m.cpu_s / r.successful if r.successful else None
            lines.append(
                f"{r.config:>7} {r.load:>13} {m.token:>6} {m.pid:>7} {m.cpu_s:>6.2f} "
                f"{_us(per):>7} " + " ".join(f"{m.counters.get(k, 0):>16}" for k in FARM_COUNTERS)
            )
    lines += ["", "== relay ratio and relay cost"]
    for load in ("registrations", "calls"):
        of = {r.config: r for r in results if r.load == load}
        for name in ("farm", "farm-hash"):
            farm = of.get(name)
            if farm is not None and farm.relay_ratio is not None:
                lines.append(
                    f"{load:>13}: {name} relayed {farm.relayed} of {farm.packets_in} packets it "
                    f"received (SIPp's sends) = {100 * farm.relay_ratio:.1f} %"
                )
        pairs = (
            ("farm", "single"),
            ("farm-hash", "single"),
            ("pair", "single"),
            ("farm", "pair"),
            ("farm-hash", "pair"),
            ("farm1", "single"),
            ("farm", "farm1"),
        )
        for top, bottom in pairs:
            a, b = of.get(top), of.get(bottom)
            if not (a and b and a.cpu_us_per_call and b.cpu_us_per_call):
                continue
            ratio = a.cpu_us_per_call / b.cpu_us_per_call
            target = ""
            if bottom == "single" and top.startswith("farm") and top != "farm1":
                verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
                target = f" ({verdict} the target <= {TARGET_RATIO})"
            lines.append(
                f"{load:>13}: {top} {a.cpu_us_per_call:.0f} us / {bottom} "
                f"{b.cpu_us_per_call:.0f} us = {ratio:.2f} x{target}"
            )
    lines += ["", "== durability (group commit with fsync) against none"]
    of = {r.config: r for r in results if r.load == "registrations"}
    durable, loose = of.get("farm"), of.get("farm-nosync")
    if durable and loose and loose.achieved_rate:
        ratio = durable.achieved_rate / loose.achieved_rate
        verdict = "meets" if ratio >= DURABLE_TARGET else "MISSES"
        p99 = {r.config: (r.rtt_ms.p99 if r.rtt_ms else None) for r in (durable, loose)}
        lines.append(
            f"registrations: {durable.achieved_rate:.0f}/s durable / {loose.achieved_rate:.0f}/s "
            f"without = {ratio:.2f} ({verdict} the target >= {DURABLE_TARGET}); p99 "
            f"{p99['farm']} / {p99['farm-nosync']} ms; CPU "
            f"{_us(durable.cpu_us_per_call)} / {_us(loose.cpu_us_per_call)} per registration"
        )
    for config, error in errors.items():
        lines.append(f"{config}: stopped early: {error.splitlines()[0]}")
    return "\n".join(lines)


def write_json(results: Sequence[LoadResult], errors: dict[str, str],
               args: argparse.Namespace) -> Path:  # fmt: skip
    harness.RESULTS.mkdir(parents=True, exist_ok=True)
    path = harness.RESULTS / f"farm-{time.strftime('%Y%m%dT%H%M%S')}.json"

    def one(r: LoadResult) -> dict[str, Any]:
        data = dataclasses.asdict(r)
        data.update(
            cpu_s=r.cpu_s, cpu_us_per_call=r.cpu_us_per_call, relayed=r.relayed,
            relay_ratio=r.relay_ratio, failed_pct=r.failed_pct, passed=r.passed,
        )  # fmt: skip
        return data

    document = {
        "bench": "farm",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg": os.getloadavg()[0],
            "rtt_resolution_ms": harness.rtt_resolution_ms(),
        },
        "args": {k: v for k, v in vars(args).items() if isinstance(v, int | float | str | None)},
        "target_ratio": TARGET_RATIO,
        "results": [one(r) for r in results],
        "errors": errors,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


# -------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reg-rate", type=int, default=500, help="registrations/s (500)")
    parser.add_argument("--call-rate", type=int, default=200, help="calls/s (200)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load (10)")
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="seconds of each load before it is measured (2; 0: none)")  # fmt: skip
    parser.add_argument("--hold", type=float, default=1.0, help="seconds a call is held (1)")
    parser.add_argument("--accounts", type=int, default=2000, help="accounts provisioned (2000)")
    parser.add_argument("--members", type=int, default=2, help="farm members (2)")
    parser.add_argument("--configs", default="single,farm",
                        help="configurations, in order: single, farm1 (up --members 1: the "
                        "farm's cost without relays), farm, farm-nosync (farm with --no-sync: "
                        "durability's cost) (single,farm)")  # fmt: skip
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="record every member with py-spy during each measured load, "
                        "collapsed stacks into DIR (the CPU figures then include py-spy's "
                        "cost: do not quote them)")  # fmt: skip
    parser.add_argument("--runs", type=int, default=1,
                        help="runs, each the --configs in turn (1)")  # fmt: skip
    parser.add_argument("--loads", default="registrations,calls",
                        help="which loads, in order (registrations,calls)")  # fmt: skip
    parser.add_argument("--equal-load", action="store_true",
                        help="run farm and farm-nosync at --members times the rates: each "
                        "member as busy as the single member (see the docstring)")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the SIPp and server files")
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 60 or not 0 <= args.warmup <= 60:
        parser.error("--duration must be in (0, 60], --warmup in [0, 60]")
    if args.reg_rate <= 0 or args.call_rate <= 0:
        parser.error("rates must be positive")
    if not 0 <= args.hold <= 30:
        parser.error("--hold must be in [0, 30]")
    if not 10 <= args.accounts <= 100_000:
        parser.error("--accounts must be in [10, 100000]")
    if not 1 <= args.runs <= 10:
        parser.error("--runs must be in [1, 10]")
    if not 2 <= args.members <= 8:
        parser.error("--members must be in [2, 8]")
    args.configs = tuple(x for x in args.configs.split(",") if x)
    if not args.configs or any(x not in CONFIGS for x in args.configs):
        parser.error(f"--configs takes {', '.join(CONFIGS)}")
    if args.profile is not None and not PY_SPY.exists():
        parser.error(f"--profile needs {PY_SPY}")
    args.loads = tuple(x for x in args.loads.split(",") if x)
    if not args.loads or any(x not in ("registrations", "calls") for x in args.loads):
        parser.error("--loads takes registrations and/or calls")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    available = {
        "registrations": Load(
            "registrations", "reg", args.reg_rate, args.duration,
            extra=("-auth_uri", DOMAIN),
        ),
        "calls": Load(
            "calls", "call", args.call_rate, args.duration, hold_s=args.hold,
            scenario=harness.SCENARIOS / "call_uac_auth.xml",
            # -auth_uri: the digest uri must equal the Request-URI (the callee's AOR);
            # added below, once the callee is known.
            extra=("-d", str(round(args.hold * 1000))),
        ),
    }  # fmt: skip
    callee = bench_register.user_name(args.accounts - 1)
    loads = [
        dataclasses.replace(
            available[name], extra=(*available[name].extra, "-auth_uri", f"{callee}@{DOMAIN}")
        )
        if name == "calls"
        else available[name]
        for name in args.loads
    ]
    results: list[LoadResult] = []
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="sipfarm-bench-farm-") as tmp:
        workdir = Path(tmp)
        # Runs alternate the configurations, so that other work on the machine falls
        # on both alike rather than on one of them.
        for run in range(1, args.runs + 1):
            for config in args.configs:
                found, error = measure(config, loads, args, workdir / f"run{run}-{config}")
                results.extend(dataclasses.replace(r, run=run) for r in found)
                if error:
                    errors[f"run {run} {config}"] = error
        if args.keep:
            kept = Path(tempfile.mkdtemp(prefix="sipfarm-bench-farm-kept-"))
            for path in workdir.iterdir():
                path.rename(kept / path.name)
            logger.info("files kept in %s", kept)
    for run in range(1, args.runs + 1):
        mine = [r for r in results if r.run == run]
        failed = {k: v for k, v in errors.items() if k.startswith(f"run {run} ")}
        print(format_report(mine, failed, args, run))
        print()
    if args.runs > 1:
        print(format_ratios(results))
    path = write_json(results, errors, args)
    print(f"results: {path}")
    return 1 if errors or not all(r.passed for r in results) else 0


def format_ratios(results: Sequence[LoadResult]) -> str:
    """Farm over single CPU per call, run by run, and the median."""
    lines = ["== farm CPU per call / single member CPU per call, by run"]
    for load in ("registrations", "calls"):
        for farm in ("farm", "farm-hash", "pair"):
            ratios = []
            for run in sorted({r.run for r in results}):
                pair = {
                    r.config: r.cpu_us_per_call for r in results if r.run == run and r.load == load
                }
                if pair.get("single") and pair.get(farm):
                    ratios.append(pair[farm] / pair["single"])  # type: ignore[operator]
            if ratios:
                cells = ", ".join(f"{x:.2f}" for x in ratios)
                lines.append(
                    f"{load:>13}: {farm:>9} {cells}; median {statistics.median(ratios):.2f} "
                    f"(target <= {TARGET_RATIO})"
                )
    return "\n".join(lines)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # every process was stopped on the way out
        sys.exit(130)
