"""Lookup latency through a non-owner member: the farm member that must ask the owner of
the callee's AOR for its bindings, against the owner itself and against Kamailio.

    .venv/bin/python loadtest/bench_lookup.py [--rate 300] [--duration 20] [--warmup 2]
                                              [--accounts 10000] [--members 2]
                                              [--reg-rate 1000] [--loads query,message]
                                              [--only farm|kamailio] [--keep]

Issue 6 item 6.  Bindings live with the ring owner of their AOR (sipfarm/farm.py); a
member that needs an AOR it does not own either relays the request to the owner (a
REGISTER is placed by its AOR) or asks the owner over the cluster link (a ``lookup``
call, ``Farm._needs_lookup``) before its core routes a new out-of-dialog request.
This measures what that costs in response time at a moderate fixed rate (latency, not
throughput: ``--rate`` is far below what either server passes).

The servers, one after the other (they never share the CPU), each with ``--accounts``
accounts (``u00000``... at example.com, provisioned as bench_farm.py does) all
registered first (``register_contact.xml`` at ``--reg-rate``; on the farm each account
through the owner of its AOR, so that every member holds the callee's flow, see
:func:`callee_uas`), every contact pointing at one SIPp UAS
(``lookup_message_uas.xml``, which answers every MESSAGE 200):

- ``farm``: a local etcd and ``--members`` ``sipfarm member`` processes ``m1``...,
  each on its own loopback address (no balancer: the load generator picks the member),
  ``--trusted 127.0.0.0/8``, bindings durable (the default);
- ``kamailio``: loadtest/kamailio/lookup.cfg (registrar, usrloc in memory, tm; one SIP
  worker per transport), no authentication either.

Two loads, each ``rate x duration`` requests after a ``--warmup`` of other accounts, to
registered users in turn (a callee comes back only after its whole pool, long after
the asking member dropped its last answer, LOOKUP_TTL), each request sent by SIPp's
``setdest`` to the server its injection line names:

1. ``query`` (``lookup_query_uac.xml``): REGISTER without Contact (RFC 3261 §10.2.3),
   200 listing the contact.  ``non-owner``: sent to a member that does not own the
   AOR: relayed to the owner, whose 200 comes back through the receiving member (an
   Emit).  ``owner``: sent to the owner.
2. ``message`` (``lookup_message_uac.xml``): MESSAGE to the user, proxied to the UAS,
   its 200 back.  Every Call-ID is known in advance (SIPp's ``-cid_str``), and each
   request goes to the member that owns its Call-ID (the router serves it there, no
   relay).  ``non-owner``: the callee's AOR is another member's: the receiving member
   parks the request, asks the owner (``lookup``), then proxies.  ``owner``: the callee
   is the receiving member's own (no lookup).  Both paths send the same number of
   requests to each member, at the same rate.

The MESSAGE load starts only once the farm's hand-off window (sipfarm.router.HANDOFF,
32 s after the ring last changed) is over: within it, a new non-INVITE request is
placed by the previous ring and would be relayed.

Response times are taken from SIPp's ``-trace_msg`` log (gettimeofday, microseconds:
first request sent to first 200 received, per Call-ID), because SIPp's own response
times (``-trace_rtt``) come from a 4 ms clock (harness.py) that is coarser than what is
measured here; SIPp's mean is kept in the JSON as a cross-check.  Also measured: the
rate achieved, failed calls, retransmissions, the server's CPU per request (the members'
or Kamailio's process tree), and for the farm the counters of GET /status over each
load (lookups sent, relays, emits): a ``non-owner`` MESSAGE load sends one lookup per
request and relays none.

A load passes as in harness.judge (no failed call, retransmissions under 0.1 %, 97 %
of the rate).  Tables to stdout, progress to stderr, everything to
loadtest/results/lookup-<timestamp>.json.  See loadtest/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import itertools
import json
import logging
import math
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench_farm
import bench_register
import harness

from cluster.etcdproc import EtcdProcess
from cluster.ring import Ring
from sipfarm.farm import LOOKUP_TTL
from sipfarm.router import HANDOFF

logger = logging.getLogger("bench_lookup")

SERVERS = ("farm", "kamailio")
LOADS = ("query", "message")
#: What the request of each load is (the method whose first send starts the clock).
METHODS = {"query": "REGISTER", "message": "MESSAGE"}
SCENARIOS = {
    "query": harness.SCENARIOS / "lookup_query_uac.xml",
    "message": harness.SCENARIOS / "lookup_message_uac.xml",
}
UAS_SCENARIO = harness.SCENARIOS / "lookup_message_uas.xml"
REGISTER_SCENARIO = harness.SCENARIOS / "register_contact.xml"
LOOKUP_CFG = harness.LOADTEST / "kamailio" / "lookup.cfg"
KAMAILIO_SHM_MB = 256
DOMAIN = bench_register.DOMAIN
TRUSTED = "127.0.0.0/8"
#: Seconds for etcd and the members to form a ring of all members.
FARM_READY_S = 30.0
#: Seconds a member gets to stop after SIGTERM before SIGKILL.
MEMBER_STOP_S = 10.0
#: Seconds after SIPp stops before the counters and CPU are read (the last answers).
SETTLE_S = 1.0
#: A member reuses a lookup's answer for LOOKUP_TTL, dropped by its 1 s expiry tick:
#: a callee asked again sooner is served without a lookup.
REUSE_S = LOOKUP_TTL + 1.0
#: The farm counters summed over the members for each load (sipfarm/farm.py).
COUNTERS = (
    "received",
    "relayed_out",
    "emitted",
    "lookups_sent",
    "lookups_answered",
    "lookups_timed_out",
)


# ------------------------------------------------------------------ the servers


@dataclass(frozen=True, slots=True)
class UnderTest:
    """A server as the loads see it: where requests go, and what it spent."""

    name: str
    host: str
    port: int
    cpu_ticks: Callable[[], int]
    counters: Callable[[], dict[str, int]]
    #: Raises ServerError when a process of the server died.
    check_alive: Callable[[str], None]


@dataclass(slots=True)
class FarmMember:
    token: str
    host: str
    process: subprocess.Popen[bytes]
    log: Path
    admin: bench_farm.Member


@dataclass(slots=True)
class LoopbackFarm:
    """Members on their own loopback addresses, with the ring they formed."""

    members: list[FarmMember]
    ring: Ring
    #: time.monotonic() when every member was seen ready in the full ring.
    ring_at: float

    def host_of(self, token: str) -> str:
        return next(m.host for m in self.members if m.token == token)

    def counters(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for m in self.members:
            for key, value in m.admin.counters().items():
                total[key] = total.get(key, 0) + value
        return total

    def cpu_ticks(self) -> int:
        return sum(m.admin.cpu_ticks() for m in self.members)

    def check_alive(self, what: str) -> None:
        for m in self.members:
            if m.process.poll() is not None:
                tail = "\n".join(m.log.read_text(errors="replace").splitlines()[-20:])
                raise harness.ServerError(
                    f"member {m.token} (pid {m.process.pid}) exited with status "
                    f"{m.process.returncode} {what}\n--- its log, last lines:\n{tail}"
                )


def _two_ports(host: str) -> tuple[int, int]:
    first = harness.free_port(host)
    while (second := harness.free_port(host)) == first:
        pass
    return first, second


@contextlib.contextmanager
def loopback_farm(data: Path, count: int, workdir: Path) -> Iterator[LoopbackFarm]:
    """etcd and ``count`` members ``m1``... on fresh loopback addresses, ready in one ring.

    Every process is stopped by PID on the way out: the members (SIGTERM together, then
    SIGKILL after MEMBER_STOP_S), then etcd.
    """
    etcd = EtcdProcess(
        workdir / "etcd", host=bench_farm.fresh_loopback(2379), log=workdir / "etcd.log"
    )
    members: list[FarmMember] = []
    try:
        etcd.start()
        for i in range(count):
            token = f"m{i + 1}"
            host = bench_farm.fresh_loopback()
            cluster, http = _two_ports(host)
            argv = (
                str(harness.SIPFARM), "member", "--sip", f"{host}:{harness.SIP_PORT}",
                "--data", str(data), "--token", token,
                "--etcd", f"{etcd.client[0]}:{etcd.client[1]}",
                "--cluster", f"{host}:{cluster}", "--http", f"{host}:{http}",
                "--trusted", TRUSTED,
            )  # fmt: skip
            log = workdir / f"{token}.log"
            process = bench_farm._spawn(argv, log, workdir)
            admin = bench_farm.Member(token, process.pid, (host, http))
            members.append(FarmMember(token, host, process, log, admin))
        farm = LoopbackFarm(members, Ring(m.token for m in members), 0.0)
        deadline = time.monotonic() + FARM_READY_S
        while True:
            farm.check_alive("before the ring formed")
            with contextlib.suppress(OSError, ValueError, KeyError):
                views = [m.admin.status() for m in members]
                if all(
                    v["state"] == "ready" and sorted(v["view"]["ring"]) == list(farm.ring.members)
                    for v in views
                ):
                    break
            if time.monotonic() > deadline:
                raise harness.ServerError(f"no ring of {count} ready members in {FARM_READY_S} s")
            time.sleep(0.1)
        farm.ring_at = time.monotonic()
        logger.info(
            "farm: etcd pid %s on %s, members %s",
            etcd.pid,
            etcd.url,
            ", ".join(f"{m.token} pid {m.process.pid} on {m.host}" for m in members),
        )
        yield farm
    finally:
        for m in members:
            if m.process.poll() is None:
                m.process.terminate()
        for m in members:
            status = harness.stop_process(m.process, MEMBER_STOP_S)
            logger.info("farm: %s pid %d stopped, status %s", m.token, m.process.pid, status)
        status = etcd.stop()
        logger.info("farm: etcd pid %s stopped, status %s", etcd.pid, status)


# ------------------------------------------------------------------- the callee


def aor(i: int) -> str:
    """Account ``i``'s AOR, as the farm keys its owner (sipfarm.farm.register_key)."""
    return f"sip:{bench_register.user_name(i)}@{DOMAIN}".lower()


class Callees:
    """The accounts by the member that owns their AOR, each pool handed out in turn.

    The turns go on from one load to the next, so that a callee comes back only after
    its whole pool, never while a member may still hold the answer of its last lookup.
    """

    def __init__(self, count: int, ring: Ring | None) -> None:
        members = ring.members if ring is not None else ("-",)
        self.ring = ring
        self.pools: dict[str, list[int]] = {m: [] for m in members}
        for i in range(count):
            self.pools[ring.owner(aor(i)) if ring is not None else "-"].append(i)
        self._turns = {m: itertools.cycle(pool) for m, pool in self.pools.items() if pool}
        self._everyone = itertools.cycle(range(count))
        self._others = {m: itertools.cycle([o for o in members if o != m]) for m in members}

    def smallest_pool(self) -> int:
        return min(len(pool) for pool in self.pools.values())

    def any(self) -> int:
        return next(self._everyone)

    def owned_by(self, member: str) -> int:
        return next(self._turns[member])

    def not_owned_by(self, member: str) -> int:
        return self.owned_by(self.other_than(member))

    def other_than(self, member: str) -> str:
        """Another member than ``member``, each of the others in turn."""
        return next(self._others[member])


@dataclass(slots=True)
class UasResult:
    """What the callee's SIPp UAS answered, over all the loads of one server."""

    registered: int = 0
    registration_s: float = 0.0
    answered: int = 0
    failed: int = 0


@contextlib.contextmanager
def callee_uas(server: UnderTest, groups: Sequence[tuple[str, Sequence[int]]], reg_rate: int,
               workdir: Path, lifetime_s: float) -> Iterator[UasResult]:  # fmt: skip
    """Register accounts to one UAS address, then run the UAS there; stop it by PID.

    ``groups``: (server host, accounts) pairs: each group's REGISTERs go to that host,
    from the UAS's own address and port (the bindings' flow is the UAS's).  The farm
    gets each account at its AOR's owner, so that no REGISTER is relayed and every
    member receives packets from the UAS itself: each holds the UAS's flow and sends
    to it directly (sipfarm/flows.py), whichever member proxies a MESSAGE.  Had they
    all come through one member, the others' MESSAGEs would go out through it (an
    Emit, and the 200 relayed back), the same on both paths, hiding the lookup.
    """
    host = bench_farm.fresh_loopback()
    port = harness.free_port(host)
    result = UasResult()
    started = time.monotonic()
    for n, (target, accounts) in enumerate(groups):
        regdir = workdir / f"register-{n}"
        regdir.mkdir(parents=True)
        csv_path = regdir / "accounts.csv"
        lines = ["SEQUENTIAL"] + [
            f"{bench_register.user_name(i)};{DOMAIN};{bench_register.password(i)};"
            f"{bench_register.user_name(i)}@{host}:{port}"
            for i in accounts
        ]
        csv_path.write_text("\n".join(lines) + "\n")
        count = len(accounts)
        timeout = math.ceil(2 * count / reg_rate + 10)
        logger.info("%s: registering %d accounts at %d/s through %s", server.name, count,
                    reg_rate, target)  # fmt: skip
        row = bench_farm._run_side(
            bench_farm._sipp_argv(
                f"{target}:{server.port}", REGISTER_SCENARIO, host, port,
                "-inf", str(csv_path), "-m", str(count), "-r", str(reg_rate), "-rp", "1000",
                "-l", str(max(200, reg_rate)), "-timeout", f"{timeout}s",
                "-recv_timeout", "5000", "-max_non_invite_retrans", "5",
            ),
            regdir / "sipp", timeout + 10,
        )  # fmt: skip
        registered = int(row.get("SuccessfulCall(C)", 0))
        result.registered += registered
        if registered != count:
            raise harness.SippError(
                f"{server.name}: {registered} of {count} accounts registered through {target} "
                f"({row.get('FailedCall(C)', '?')} failed)"
            )
    result.registration_s = time.monotonic() - started
    logger.info("%s: %d registered in %.1f s", server.name, result.registered,
                result.registration_s)  # fmt: skip
    uasdir = workdir / "uas"
    uasdir.mkdir()
    argv = bench_farm._sipp_argv(None, UAS_SCENARIO, host, port,
                                 "-timeout", f"{math.ceil(lifetime_s)}s")  # fmt: skip
    process = bench_farm._spawn(argv, uasdir / "stdout", uasdir)
    try:
        deadline = time.monotonic() + 5
        while harness.port_is_free(host, port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise harness.SippError(f"the SIPp UAS did not bind {host}:{port}")
            time.sleep(0.02)
        yield result
    finally:
        harness.stop_process(process)
        stat = uasdir / "stat.csv"
        last = harness.read_stat_csv(stat) if stat.exists() else {}
        result.answered = int(last.get("SuccessfulCall(C)", 0))
        result.failed = int(last.get("FailedCall(C)", 0))


# -------------------------------------------------------------------- the loads


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One load through one path of one server."""

    server: str
    load: str
    #: non-owner / owner (the farm), "-" (Kamailio).
    path: str
    rate: int
    planned: int
    successful: int
    failed: int
    retransmissions: int
    achieved_rate: float
    #: First request sent -> first 200 received, per call, from SIPp's -trace_msg (us clock).
    latency_ms: harness.Percentiles | None
    #: SIPp's own response times (rtd 1), on its 4 ms clock: a cross-check of the mean.
    sipp_rtt_ms: harness.Percentiles | None
    cpu_us_per_request: float | None
    #: Farm counters over the load, summed over the members (empty for Kamailio).
    counters: dict[str, int]
    failures: tuple[str, ...]
    loadavg: float

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def failed_pct(self) -> float:
        return 100.0 * self.failed / self.planned if self.planned else 0.0


def plan(load: str, path: str, calls: int, call_ids: Sequence[str], callees: Callees,
         farm: LoopbackFarm | None, target: tuple[str, int]) -> list[str]:  # fmt: skip
    """Injection lines ``callee;domain;host;port``, one per call, in call order."""
    rows = []
    for k in range(calls):
        host = target[0]
        if farm is None:
            callee = callees.any()
        elif load == "message":
            receiver = farm.ring.owner(call_ids[k]) or ""  # served there: no relay
            pick = callees.owned_by if path == "owner" else callees.not_owned_by
            callee = pick(receiver)
            host = farm.host_of(receiver)
        else:  # a REGISTER is placed by its AOR, whatever its Call-ID
            callee = callees.any()
            owner = farm.ring.owner(aor(callee)) or ""
            host = farm.host_of(owner if path == "owner" else callees.other_than(owner))
        rows.append(f"{bench_register.user_name(callee)};{DOMAIN};{host};{target[1]}")
    return rows


_TRACE_MARK = re.compile(
    r"^-{47} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\r?\n\S+ message (sent|received)", re.M
)
_CALL_ID = re.compile(r"^Call-ID:[ \t]*(\S+)", re.M | re.I)


def trace_latencies(directory: Path, method: str) -> dict[str, float]:
    """Call-ID -> ms from the first ``method`` sent to the first 200 received.

    Read from SIPp's ``-trace_msg`` log, whose entries carry gettimeofday() to the
    microsecond (SIPp's -trace_rtt has its 4 ms clock).  A retransmission does not
    restart the clock: what the caller waited is measured.
    """
    sent: dict[str, float] = {}
    answered: dict[str, float] = {}
    request = method + " "
    for path in directory.glob("*_messages.log"):
        text = path.read_text(errors="replace")
        marks = list(_TRACE_MARK.finditer(text))
        for n, mark in enumerate(marks):
            end = marks[n + 1].start() if n + 1 < len(marks) else len(text)
            block = text[mark.end() : end]
            found = _CALL_ID.search(block)
            if found is None:
                continue
            body = block.split("\n", 1)[-1].lstrip("\r\n")
            when = datetime.datetime.fromisoformat(mark.group(1)).timestamp()
            call_id = found.group(1)
            if mark.group(2) == "sent" and body.startswith(request):
                sent.setdefault(call_id, when)
            elif mark.group(2) == "received" and body.startswith("SIP/2.0 200 "):
                answered.setdefault(call_id, when)
    return {c: 1000.0 * (answered[c] - t) for c, t in sent.items() if c in answered}


def run_case(server: UnderTest, load: str, path: str, rate: int, duration_s: float,
             callees: Callees, farm: LoopbackFarm | None, sipp_host: str,
             workdir: Path) -> CaseResult:  # fmt: skip
    """Send ``rate x duration_s`` requests of ``load`` along ``path`` and measure them."""
    workdir.mkdir(parents=True)
    calls = harness.step_calls(rate, duration_s)
    prefix = "lk" + secrets.token_hex(4)
    # SIPp names call k (from 1) "<k>-<prefix>@<local address>" (-cid_str): known here.
    call_ids = [f"{k}-{prefix}@{sipp_host}" for k in range(1, calls + 1)]
    csv_path = workdir / "calls.csv"
    rows = plan(load, path, calls, call_ids, callees, farm, (server.host, server.port))
    csv_path.write_text("\n".join(["SEQUENTIAL", *rows]) + "\n")
    run = harness.SippRun(
        scenario=SCENARIOS[load],
        target_host=server.host,
        target_port=server.port,
        local_host=sipp_host,
        local_port=harness.free_port(sipp_host),
        rate=rate,
        calls=calls,
        limit=max(200, rate),
        timeout_s=math.ceil(2 * calls / rate + 2 + 5),
        extra=("-inf", str(csv_path), "-cid_str", f"%u-{prefix}@%s", "-trace_msg"),
    )
    loadavg = os.getloadavg()[0]
    before = server.counters()
    ticks = server.cpu_ticks()
    stats = harness.run_sipp(run, workdir / "uac")
    time.sleep(SETTLE_S)
    cpu_s = (server.cpu_ticks() - ticks) / harness.CLOCK_TICKS
    after = server.counters()
    server.check_alive(f"during the {load} load")
    latencies = trace_latencies(workdir / "uac", METHODS[load])
    failures = list(harness.judge(stats, rate, duration_s, harness.PassCriteria()))
    strangers = set(latencies) - set(call_ids)
    if strangers:  # the plan placed the calls by Call-IDs SIPp did not use
        failures.append(f"{len(strangers)} Call-IDs not as planned, e.g. {min(strangers)}")
    if len(latencies) < stats.successful:
        failures.append(f"{len(latencies)} response times in the trace < {stats.successful} calls")
    counters = {k: after.get(k, 0) - before.get(k, 0) for k in COUNTERS} if after else {}
    return CaseResult(
        server=server.name,
        load=load,
        path=path,
        rate=rate,
        planned=calls,
        successful=stats.successful,
        failed=stats.failed,
        retransmissions=stats.retransmissions,
        achieved_rate=stats.achieved_rate,
        latency_ms=harness.percentiles(list(latencies.values())),
        sipp_rtt_ms=harness.percentiles(stats.rtts_ms),
        cpu_us_per_request=1e6 * cpu_s / stats.successful if stats.successful else None,
        counters=counters,
        failures=tuple(failures),
        loadavg=loadavg,
    )


def run_loads(
    server: UnderTest,
    farm: LoopbackFarm | None,
    paths: Sequence[str],
    args: argparse.Namespace,
    workdir: Path,
) -> tuple[list[CaseResult], UasResult]:
    """Register the accounts, start the callee, then each load along each path, warmed up."""
    callees = Callees(args.accounts, farm.ring if farm is not None else None)
    if farm is not None and callees.smallest_pool() < 2 * args.rate * REUSE_S:
        logger.warning(
            "farm: %d accounts in the smallest owner's pool: callees come back within "
            "%.0f s, and some lookups are answered from the last one (see lookups/req)",
            callees.smallest_pool(),
            REUSE_S,
        )
    sipp_host = bench_farm.fresh_loopback()
    results: list[CaseResult] = []
    lifetime = len(args.loads) * len(paths) * 2 * (args.warmup + args.duration + 10) + 60
    groups: list[tuple[str, Sequence[int]]] = [(server.host, range(args.accounts))]
    if farm is not None:
        groups = [(farm.host_of(m), pool) for m, pool in callees.pools.items()]
    with callee_uas(server, groups, args.reg_rate, workdir, lifetime) as uas:
        for load in args.loads:
            if load == "message" and farm is not None:
                wait = farm.ring_at + HANDOFF + 1.0 - time.monotonic()
                if wait > 0:
                    logger.info("farm: %.0f s until the ring's hand-off window is over", wait)
                    time.sleep(wait)
            for path in paths:
                tag = f"{load}-{path}" if path != "-" else load
                if args.warmup > 0:
                    warm = run_case(server, load, path, args.rate, args.warmup, callees, farm,
                                    sipp_host, workdir / f"warm-{tag}")  # fmt: skip
                    if not warm.passed:
                        logger.warning("%s: warm-up %s: %s", server.name, tag,
                                       "; ".join(warm.failures))  # fmt: skip
                    time.sleep(0.5)
                logger.info("%s: %s at %d/s for %.0f s", server.name, tag, args.rate,
                            args.duration)  # fmt: skip
                result = run_case(server, load, path, args.rate, args.duration, callees, farm,
                                  sipp_host, workdir / tag)  # fmt: skip
                logger.info("%s: %s", server.name, _progress(result))
                results.append(result)
                time.sleep(0.5)
    return results, uas


#: What measuring one server gives: its loads, its callee, and why it stopped early.
Measured = tuple[list[CaseResult], UasResult | None, str | None]


def measure_farm(
    args: argparse.Namespace, accounts: bench_farm.Accounts, workdir: Path
) -> Measured:
    try:
        with loopback_farm(accounts.data, args.members, workdir / "farm") as farm:
            first = farm.members[0]
            server = UnderTest(
                "farm", first.host, harness.SIP_PORT, farm.cpu_ticks, farm.counters,
                farm.check_alive,
            )  # fmt: skip
            results, uas = run_loads(server, farm, ("non-owner", "owner"), args,
                                     workdir / "farm-loads")  # fmt: skip
            return results, uas, None
    except (harness.ServerError, harness.SippError) as exc:
        logger.error("farm: %s", exc)
        return [], None, str(exc)


def measure_kamailio(args: argparse.Namespace, workdir: Path) -> Measured:
    rundir = workdir / "kamailio-run"
    rundir.mkdir(parents=True)
    spec = harness.kamailio_spec(
        rundir, host=bench_farm.fresh_loopback(), cfg=LOOKUP_CFG,
        extra=("-m", str(KAMAILIO_SHM_MB)),
    )  # fmt: skip
    try:
        with harness.running(spec, rundir) as running:

            def check_alive(what: str) -> None:
                if running.process.poll() is not None:
                    raise harness.ServerError(running.describe(f"exited {what}"))

            server = UnderTest("kamailio", spec.host, spec.port, running.cpu_ticks,
                               dict, check_alive)  # fmt: skip
            results, uas = run_loads(server, None, ("-",), args, workdir / "kamailio-loads")
            return results, uas, None
    except (harness.ServerError, harness.SippError) as exc:
        logger.error("kamailio: %s", exc)
        return [], None, str(exc)


# ------------------------------------------------------------------------ report


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _progress(r: CaseResult) -> str:
    p = r.latency_ms
    cells = "-" if p is None else f"{p.p50:.2f}/{p.p95:.2f}/{p.p99:.2f}"
    verdict = "pass" if r.passed else "FAIL: " + "; ".join(r.failures)
    return (
        f"{r.load} {r.path} {r.rate}/s -> {r.achieved_rate:.0f}/s, {r.failed} failed, "
        f"p50/p95/p99 {cells} ms, lookups {r.counters.get('lookups_sent', '-')}, "
        f"relayed {r.counters.get('relayed_out', '-')}, {verdict}"
    )


def format_report(results: Sequence[CaseResult], uas: dict[str, UasResult],
                  errors: dict[str, str], args: argparse.Namespace) -> str:  # fmt: skip
    lines = [
        f"== lookup latency through a non-owner member (issue 6 item 6); {os.cpu_count()} CPUs",
        f"   farm: etcd + {args.members} x sipfarm member, each on its own 127.x address, "
        f"--trusted {TRUSTED}; kamailio: kamailio/lookup.cfg (usrloc in memory, tm)",
        f"   {args.accounts} accounts registered at one SIPp UAS; every load {args.rate}/s for "
        f"{args.duration:g} s after {args.warmup:g} s of warm-up",
        "   query: REGISTER without Contact -> 200; message: MESSAGE -> callee -> 200",
        "   non-owner: sent to a member that does not own the AOR (query: relayed to the "
        "owner; message: served where received, lookup call to the owner); owner: to the "
        "owner",
        "   response times: first request -> first 200, us clock (SIPp -trace_msg)",
        "",
        f"{'server':>8} {'load':>7} {'path':>9} {'rate/s':>6} {'achieved':>8} {'ok':>6} "
        f"{'fail%':>6} {'retr':>4} {'p50ms':>6} {'p95ms':>6} {'p99ms':>6} {'mean':>6} "
        f"{'max':>7} {'us/req':>6} {'lookups':>7} {'relays':>6} {'emits':>6} {'load':>4} verdict",
    ]
    for r in results:
        p = r.latency_ms
        p50, p95, p99, mean, top = (
            ("-",) * 5 if p is None else (_ms(p.p50), _ms(p.p95), _ms(p.p99), _ms(p.mean),
                                          _ms(p.max))
        )  # fmt: skip
        c = r.counters
        cpu = "-" if r.cpu_us_per_request is None else f"{r.cpu_us_per_request:.0f}"
        verdict = "pass" if r.passed else "FAIL: " + "; ".join(r.failures)
        lines.append(
            f"{r.server:>8} {r.load:>7} {r.path:>9} {r.rate:>6} {r.achieved_rate:>8.0f} "
            f"{r.successful:>6} {r.failed_pct:>6.2f} {r.retransmissions:>4} {p50:>6} {p95:>6} "
            f"{p99:>6} {mean:>6} {top:>7} {cpu:>6} {c.get('lookups_sent', '-'):>7} "
            f"{c.get('relayed_out', '-'):>6} {c.get('emitted', '-'):>6} {r.loadavg:>4.1f} "
            f"{verdict}"
        )
    lines += ["", "== ratios of response times (p99, and p50 in parentheses)"]
    for load in args.loads:
        of = {r.server if r.path == "-" else r.path: r for r in results if r.load == load}
        lookup = of.get("non-owner")
        if lookup is None or lookup.latency_ms is None:
            continue
        for base in ("owner", "kamailio"):
            other = of.get(base)
            if other is None or other.latency_ms is None:
                continue
            a, b = lookup.latency_ms, other.latency_ms
            lines.append(
                f"{load:>8}: non-owner / {base}: p99 {a.p99:.2f} / {b.p99:.2f} ms = "
                f"{_ratio(a.p99, b.p99)} ({a.p50:.2f} / {b.p50:.2f} ms = {_ratio(a.p50, b.p50)}); "
                f"difference {a.p50 - b.p50:+.2f} ms at p50, {a.p99 - b.p99:+.2f} ms at p99"
            )
    lines += ["", "== the callee (SIPp UAS) and the registrations"]
    for name, u in uas.items():
        expected = sum(r.successful for r in results if r.server == name and r.load == "message")
        lines.append(
            f"{name:>8}: {u.registered} accounts registered in {u.registration_s:.1f} s; "
            f"UAS answered {u.answered} MESSAGEs ({expected} measured, the rest warm-ups), "
            f"{u.failed} failed"
        )
    for name, error in errors.items():
        lines.append(f"{name}: stopped early: {error.splitlines()[0]}")
    return "\n".join(lines)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b > 0 else "-"


def write_json(results: Sequence[CaseResult], uas: dict[str, UasResult],
               errors: dict[str, str], args: argparse.Namespace) -> Path:  # fmt: skip
    harness.RESULTS.mkdir(parents=True, exist_ok=True)
    path = harness.RESULTS / f"lookup-{time.strftime('%Y%m%dT%H%M%S')}.json"

    def one(r: CaseResult) -> dict[str, Any]:
        data = dataclasses.asdict(r)
        data.update(passed=r.passed, failed_pct=r.failed_pct)
        return data

    document = {
        "bench": "lookup",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg": os.getloadavg()[0],
            "sipp_rtt_resolution_ms": harness.rtt_resolution_ms(),
        },
        "args": {
            k: v if isinstance(v, int | float | str | None) else list(v)
            for k, v in vars(args).items()
        },
        "results": [one(r) for r in results],
        "uas": {name: dataclasses.asdict(u) for name, u in uas.items()},
        "errors": errors,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


# -------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=300, help="requests/s of every load (300)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per load (20)")
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="seconds of each load before it is measured (2; 0: none)")  # fmt: skip
    parser.add_argument("--accounts", type=int, default=10_000,
                        help="accounts provisioned and registered (10000)")  # fmt: skip
    parser.add_argument("--members", type=int, default=2, help="farm members (2)")
    parser.add_argument("--reg-rate", type=int, default=1000,
                        help="registrations/s before the loads (1000)")  # fmt: skip
    parser.add_argument("--loads", default="query,message",
                        help="which loads, in order (query,message)")  # fmt: skip
    parser.add_argument("--only", choices=SERVERS, help="measure one server only")
    parser.add_argument("--keep", action="store_true", help="keep the SIPp and server files")
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 60 or not 0 <= args.warmup <= 30:
        parser.error("--duration must be in (0, 60], --warmup in [0, 30]")
    if not 1 <= args.rate <= 5000 or not 1 <= args.reg_rate <= 5000:
        parser.error("--rate and --reg-rate must be in [1, 5000]")
    if not 10 <= args.accounts <= 100_000:
        parser.error("--accounts must be in [10, 100000]")
    if not 2 <= args.members <= 8:
        parser.error("--members must be in [2, 8]")
    args.loads = tuple(x for x in args.loads.split(",") if x)
    if not args.loads or any(x not in LOADS for x in args.loads):
        parser.error(f"--loads takes {', '.join(LOADS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    loadavg = os.getloadavg()[0]
    if loadavg > 0.5 * (os.cpu_count() or 1):
        logger.warning("load average %.1f: other work may skew the numbers", loadavg)
    results: list[CaseResult] = []
    uas: dict[str, UasResult] = {}
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="sipfarm-bench-lookup-") as tmp:
        workdir = Path(tmp)
        for name in SERVERS:
            if args.only not in (None, name):
                continue
            if name == "farm":
                logger.info("provisioning %d accounts", args.accounts)
                accounts = bench_farm.provision(workdir / "accounts", args.accounts)
                found, callee, error = measure_farm(args, accounts, workdir)
            else:
                found, callee, error = measure_kamailio(args, workdir)
            results.extend(found)
            if callee is not None:
                uas[name] = callee
            if error:
                errors[name] = error
        if args.keep:
            kept = Path(tempfile.mkdtemp(prefix="sipfarm-bench-lookup-kept-"))
            for path in workdir.iterdir():
                path.rename(kept / path.name)
            logger.info("files kept in %s", kept)
    print(format_report(results, uas, errors, args))
    path = write_json(results, uas, errors, args)
    print(f"results: {path}")
    return 1 if errors or not all(r.passed for r in results) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # every process was stopped on the way out
        sys.exit(130)
