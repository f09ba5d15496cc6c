"""Load-test harness: a SIP server under test, SIPp driving it, and the numbers.

A benchmark (``bench_*.py`` beside this file) makes three choices: which servers
(:class:`ServerSpec`), which SIPp scenario and which rates (:class:`SweepConfig`).
This module does the rest:

- :func:`running` starts a server, waits until it answers an OPTIONS over UDP (or
  raises :class:`ServerError` with its stderr after 10 s) and stops it by PID in
  ``finally`` (SIGTERM, SIGKILL after 5 s, then any worker it left behind);
- :func:`run_step` runs one bounded SIPp step at one rate and measures it: achieved
  rate, failures, retransmissions, response times from ``-trace_rtt``, and the CPU
  the server's whole process tree spent per request (``/proc/<pid>/stat``);
- :func:`judge` says whether a step passed, :class:`RateSearch` picks the next rate
  (doubling, then bisection between the last pass and the first fail), :func:`sweep`
  runs the steps within a time budget, :func:`bench` does it for every server;
- :func:`format_table`, :func:`format_summary` and :func:`write_json` report.

Only loopback addresses are used; every SIPp run is bounded in calls (``-m``) and
time (``-timeout``, ``-recv_timeout``, ``-max_non_invite_retrans`` and a wait
timeout here), and everything started is stopped by PID.

SIPp 3.6.1 takes its response times from ``CLOCK_MONOTONIC_COARSE``: on this kind
of kernel (HZ=250) a response time is a multiple of 4 ms, so on loopback most are
0.  The percentiles are therefore coarse; the mean is still unbiased (a response
of 1 ms straddles a tick one time in four).  :func:`rtt_resolution_ms` reports
the clock's resolution, and the JSON carries it.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import json
import logging
import math
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
LOADTEST = REPO / "loadtest"
SCENARIOS = LOADTEST / "scenarios"
RESULTS = LOADTEST / "results"
KAMAILIO_CFG = LOADTEST / "kamailio" / "options.cfg"
SIPFARM = REPO / ".venv" / "bin" / "sipfarm"

SIPFARM_HOST = "127.0.0.20"
KAMAILIO_HOST = "127.0.0.21"
SIPP_HOST = "127.0.0.30"
SIP_PORT = 5060

READY_TIMEOUT_S = 10.0
STOP_GRACE_S = 5.0
#: SIPp writes response times every RTT_FREQ calls and drops the remainder at exit,
#: so a step's call count is rounded up to a multiple of it.
RTT_FREQ = 100
#: Time a step costs beyond its duration (SIPp start, drain, settle); for the budget.
STEP_OVERHEAD_S = 2.0
#: SIPp's -buff_size (SO_SNDBUF/SO_RCVBUF; the kernel caps it at net.core.rmem_max).
SIPP_BUFFER_BYTES = 4 * 1024 * 1024
CLOCK_MONOTONIC_COARSE = 6  # Linux clockid; not exported by the time module
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ServerError(RuntimeError):
    """A server under test did not start, did not answer, or died."""


class SippError(RuntimeError):
    """SIPp failed by itself (bad arguments, a socket it could not bind)."""


# --------------------------------------------------------------------------- servers


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """How to start one server under test, and where it listens."""

    name: str
    argv: tuple[str, ...]
    host: str
    port: int


def sipfarm_spec(
    host: str = SIPFARM_HOST,
    port: int = SIP_PORT,
    *,
    debug: bool = False,
    extra: Sequence[str] = (),
) -> ServerSpec:
    """``sipfarm member``: one process listening on UDP and TCP ``host:port``.

    ``extra`` are more options for ``sipfarm member`` (``--data DIR``, ``--trusted NET``).
    """
    argv = [str(SIPFARM), "member", "--sip", f"{host}:{port}", *extra]
    if debug:
        argv.append("--debug")
    return ServerSpec("sipfarm", tuple(argv), host, port)


def kamailio_spec(
    rundir: Path,
    host: str = KAMAILIO_HOST,
    port: int = SIP_PORT,
    *,
    cfg: Path = KAMAILIO_CFG,
    extra: Sequence[str] = (),
) -> ServerSpec:
    """Kamailio with ``cfg`` (``loadtest/kamailio/options.cfg``): one worker per transport.

    ``-DD`` keeps the creator in the foreground (its PID is ours to stop) while it
    still forks its workers (a single ``-D`` runs without TCP); ``-E`` logs to
    stderr; ``-Y``/``-w`` keep its runtime files out of /run/kamailio.  ``extra`` are
    more options (``-m 256`` for shared memory, ``-A NAME=VALUE`` for a define).
    """
    kamailio = shutil.which("kamailio") or "/usr/sbin/kamailio"
    argv = (
        kamailio, "-f", str(cfg), "-DD", "-E",
        "-Y", str(rundir), "-w", str(rundir),
        *extra,
        "-l", f"udp:{host}:{port}", "-l", f"tcp:{host}:{port}",
    )  # fmt: skip
    return ServerSpec("kamailio", argv, host, port)


@dataclass(frozen=True, slots=True)
class ProcStat:
    """The fields of ``/proc/<pid>/stat`` the harness needs (proc(5))."""

    pid: int
    ppid: int
    #: utime + stime + cutime + cstime, in clock ticks: summed over a process tree
    #: this counts the CPU of live processes and of children already reaped, once.
    cpu_ticks: int
    start_ticks: int


def read_proc_stat(pid: int) -> ProcStat | None:
    """Read one process's stat line, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may hold spaces: split after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return ProcStat(pid, int(fields[1]), utime + stime + cutime + cstime, int(fields[19]))


def process_tree(root: int) -> list[ProcStat]:
    """``root`` and all its descendants (root first), or [] when root is gone."""
    stats: dict[int, ProcStat] = {}
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := read_proc_stat(int(entry))) is not None:
            stats[stat.pid] = stat
            children.setdefault(stat.ppid, []).append(stat.pid)
    if root not in stats:
        return []
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(stats[pid])
        todo.extend(children.get(pid, ()))
    return tree


def tree_cpu_ticks(root: int) -> int:
    """CPU clock ticks spent so far by ``root``'s process tree."""
    return sum(stat.cpu_ticks for stat in process_tree(root))


def tree_pss_kib(root: int) -> int:
    """Proportional set size of ``root``'s process tree, in KiB (``smaps_rollup``, proc(5)).

    PSS charges each shared page to the processes that map it in equal parts, so the
    sum over a tree counts Kamailio's shared memory (where usrloc keeps its bindings)
    once, not once per worker.  0 for a process gone meanwhile.
    """
    total = 0
    for stat in process_tree(root):
        try:
            text = Path(f"/proc/{stat.pid}/smaps_rollup").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        for line in text.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1])
                break
    return total


def stop_process(process: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> int:
    """Stop ``process`` by PID: SIGTERM, SIGKILL after ``grace_s``; return its exit status.

    Descendants it leaves behind (a Kamailio worker, say) are killed by PID too, each
    only if its start time shows it is still the same process.
    """
    descendants = process_tree(process.pid)[1:] if process.poll() is None else []
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            logger.warning("pid %d ignored SIGTERM for %.0f s: SIGKILL", process.pid, grace_s)
            process.kill()
            process.wait()
    for child in descendants:
        now = read_proc_stat(child.pid)
        if now is not None and now.start_ticks == child.start_ticks:
            logger.warning("pid %d (child of %d) outlived it: SIGKILL", child.pid, process.pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
    return process.returncode


def port_is_free(host: str, port: int) -> bool:
    """Whether both UDP and TCP ``host:port`` can be bound now."""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


def free_port(host: str) -> int:
    """A port on ``host`` that is free for both UDP and TCP (for SIPp's ``-p``)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if port_is_free(host, port):
            return port
    raise SippError(f"no free UDP+TCP port on {host}")


def options_probe(host: str, port: int, *, timeout_s: float = 0.25) -> bytes | None:
    """Send one OPTIONS over UDP to ``host:port``; the SIP response that answers it, or None."""
    call_id = secrets.token_hex(8)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        sock.settimeout(timeout_s)
        local_port = sock.getsockname()[1]
        request = (
            f"OPTIONS sip:probe@{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {host}:{local_port};branch=z9hG4bK{call_id};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@{host}>;tag={call_id[:8]}\r\n"
            f"To: <sip:probe@{host}:{port}>\r\n"
            f"Call-ID: {call_id}@probe\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        try:
            sock.sendto(request, (host, port))
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                data, peer = sock.recvfrom(65535)
                if (
                    peer == (host, port)
                    and data.startswith(b"SIP/2.0 ")
                    and call_id.encode() in data
                ):
                    return data
        except (TimeoutError, ConnectionRefusedError):
            return None
    return None


class RunningServer:
    """A started server: its process, its stderr file, and its CPU so far."""

    def __init__(self, spec: ServerSpec, process: subprocess.Popen[bytes], stderr_path: Path):
        self.spec = spec
        self.process = process
        self.stderr_path = stderr_path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def cpu_ticks(self) -> int:
        return tree_cpu_ticks(self.pid)

    def wait_until_answering(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Return once an OPTIONS over UDP is answered; raise ServerError on death or timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if (status := self.process.poll()) is not None:
                raise ServerError(self.describe(f"exited with status {status}"))
            if options_probe(self.spec.host, self.spec.port) is not None:
                return
            time.sleep(0.05)
        raise ServerError(self.describe(f"did not answer OPTIONS within {timeout_s:.0f} s"))

    def describe(self, what: str) -> str:
        tail = "\n".join(self.stderr_text().splitlines()[-20:])
        return f"{self.spec.name} (pid {self.pid}) {what}\n--- its stderr, last lines:\n{tail}"


@contextlib.contextmanager
def running(
    spec: ServerSpec, workdir: Path, *, ready_timeout_s: float = READY_TIMEOUT_S
) -> Iterator[RunningServer]:
    """Start ``spec`` in ``workdir``, wait until it answers, yield it, stop it by PID."""
    if not port_is_free(spec.host, spec.port):
        raise ServerError(f"{spec.host}:{spec.port} is taken: is another benchmark running?")
    if not Path(spec.argv[0]).exists():
        raise ServerError(f"{spec.name}: {spec.argv[0]} does not exist (run install.sh)")
    stderr_path = workdir / f"{spec.name}.stderr"
    with stderr_path.open("wb") as stderr:
        # Its own session: a Ctrl-C on the benchmark reaches us, and we stop it in order.
        process = subprocess.Popen(
            spec.argv, stdin=subprocess.DEVNULL, stdout=stderr, stderr=subprocess.STDOUT,
            cwd=workdir, start_new_session=True,
        )  # fmt: skip
    server = RunningServer(spec, process, stderr_path)
    try:
        server.wait_until_answering(ready_timeout_s)
        logger.info("%s: pid %d answers on %s:%d", spec.name, server.pid, spec.host, spec.port)
        yield server
    finally:
        status = stop_process(process)
        logger.info("%s: pid %d stopped, status %s", spec.name, process.pid, status)


# ------------------------------------------------------------------------------ SIPp


@dataclass(frozen=True, slots=True)
class SippRun:
    """One bounded SIPp UAC run: at most ``calls`` calls, at most ``timeout_s`` seconds."""

    scenario: Path
    target_host: str
    target_port: int
    local_host: str
    local_port: int
    rate: int
    calls: int
    limit: int
    timeout_s: int
    transport: str = "u1"
    recv_timeout_ms: int = 2000
    max_retrans: int = 3
    #: More SIPp options (``-inf FILE``, ``-d MS``), after the harness's own.
    extra: tuple[str, ...] = ()

    def argv(self) -> tuple[str, ...]:
        sipp = shutil.which("sipp") or "/usr/bin/sipp"
        return (
            sipp, f"{self.target_host}:{self.target_port}",
            "-sf", str(self.scenario), "-t", self.transport,
            # -bind_local and an explicit -p: without -p SIPp 3.6.1 does not take a
            # random port as its help says, it tries 5060..5119 first.
            "-i", self.local_host, "-bind_local", "-p", str(self.local_port),
            "-ci", self.local_host,  # its UDP control socket (8888+) off 127.0.0.1
            "-r", str(self.rate), "-rp", "1000", "-m", str(self.calls), "-l", str(self.limit),
            "-timeout", f"{self.timeout_s}s", "-recv_timeout", str(self.recv_timeout_ms),
            "-max_non_invite_retrans", str(self.max_retrans),
            "-max_invite_retrans", str(self.max_retrans),
            # SIPp's default 64 KiB socket buffers overflow from about 16000 OPTIONS/s on
            # loopback: the drops would be the generator's, not the server's.
            "-buff_size", str(SIPP_BUFFER_BYTES),
            "-nostdin", "-trace_stat", "-stf", "stat.csv", "-fd", "1",
            "-trace_counts", "-trace_rtt", "-rtt_freq", str(RTT_FREQ),
            *self.extra,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class SippStats:
    """What one SIPp run reports, read from its ``-trace_stat``/``counts``/``rtt`` files."""

    returncode: int
    created: int
    successful: int
    failed: int
    retransmissions: int
    #: First transmissions of every <send> in the scenario, plus retransmissions.
    messages_sent: int
    #: From SIPp's StartTime to its last statistics row (its exit, which lingers).
    elapsed_s: float
    #: Response times (rtd 1) in ms, at the resolution of SIPp's clock.
    rtts_ms: tuple[float, ...]
    #: From the first to the last response timed (rtd 1): the span the calls took.
    response_span_s: float
    #: CPU seconds SIPp itself used (user + system).
    cpu_s: float

    @property
    def achieved_rate(self) -> float:
        """Successful calls per second over the response span (or SIPp's run time).

        SIPp exits 0.1-0.2 s after its last call, and its StartTime comes before its
        first; over a step of a few seconds that alone costs a few percent of rate.
        The span between the first and the last response has neither.
        """
        if self.successful > 1 and self.response_span_s > 0:
            return (self.successful - 1) / self.response_span_s
        return self.successful / self.elapsed_s if self.elapsed_s > 0 else 0.0


def _stat_time(value: str) -> float:
    # "2026-11-25\t08:58:57.923975\t1795597137.923975": date, time, epoch seconds.
    return float(value.split("\t")[-1])


def read_stat_csv(path: Path) -> dict[str, str]:
    """The last row of a SIPp ``-trace_stat`` file, keyed by column name."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f, delimiter=";"))
    if len(rows) < 2:
        raise SippError(f"{path}: no statistics row")
    return dict(zip(rows[0], rows[-1], strict=False))


def read_counts_csv(path: Path) -> dict[str, int]:
    """The last row of a SIPp ``-trace_counts`` file: ``<index>_<message>_<Sent|Retrans|...>``."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f, delimiter=";"))
    return {k: int(v) for k, v in zip(rows[0], rows[-1], strict=False) if k and v.isdigit()}


def read_rtt_csv(path: Path, rtd: int = 1) -> list[tuple[float, float]]:
    """``(when, response time)`` pairs in ms from a ``-trace_rtt`` file.

    Its columns are ``Date_ms;response_time_ms;rtd_no``: when the response came, in
    ms from SIPp's start (6 significant digits), and how long it took.  Both come from
    SIPp's coarse clock (see the module docstring).
    """
    pairs = []
    with path.open(newline="") as f:
        for row in csv.reader(f, delimiter=";"):
            if len(row) >= 3 and row[2] == str(rtd):
                pairs.append((float(row[0]), float(row[1])))
    return pairs


def run_sipp(run: SippRun, workdir: Path) -> SippStats:
    """Run SIPp in ``workdir`` (created) until it stops by itself; stop it by PID regardless."""
    workdir.mkdir(parents=True, exist_ok=False)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with (workdir / "screen.txt").open("wb") as out, (workdir / "stderr.txt").open("wb") as err:
        process = subprocess.Popen(
            run.argv(), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            cwd=workdir, start_new_session=True,
        )  # fmt: skip
    try:
        process.wait(run.timeout_s + 10)
    except subprocess.TimeoutExpired:
        logger.warning("sipp pid %d overran its own -timeout", process.pid)
    finally:
        returncode = stop_process(process)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    stat_path = workdir / "stat.csv"
    if not stat_path.exists():
        raise SippError(f"sipp exited {returncode}: {(workdir / 'stderr.txt').read_text().strip()}")
    stat = read_stat_csv(stat_path)
    counts: dict[str, int] = {}
    for path in workdir.glob("*_counts.csv"):
        counts = read_counts_csv(path)
    rtts: list[tuple[float, float]] = []
    for path in workdir.glob("*_rtt.csv"):
        rtts.extend(read_rtt_csv(path))
    dates = [when for when, _ in rtts]
    retrans = int(stat["Retransmissions(C)"])
    # Without a counts file, assume one request per call.
    first_sends = sum(v for k, v in counts.items() if k.endswith("_Sent")) or int(
        stat["TotalCallCreated"]
    )
    return SippStats(
        returncode=returncode,
        created=int(stat["TotalCallCreated"]),
        successful=int(stat["SuccessfulCall(C)"]),
        failed=int(stat["FailedCall(C)"]),
        retransmissions=retrans,
        messages_sent=first_sends + retrans,
        elapsed_s=_stat_time(stat["CurrentTime"]) - _stat_time(stat["StartTime"]),
        rtts_ms=tuple(rtt for _, rtt in rtts),
        response_span_s=(max(dates) - min(dates)) / 1000 if dates else 0.0,
        cpu_s=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    )


# ----------------------------------------------------------------------- one step


@dataclass(frozen=True, slots=True)
class PassCriteria:
    """When a step passes: no failure, few retransmissions, and the rate was reached."""

    max_failed_calls: int = 0
    max_retrans_fraction: float = 0.001
    min_rate_fraction: float = 0.97


@dataclass(frozen=True, slots=True)
class SweepConfig:
    """A rate sweep: the scenario, the steps, and their bounds."""

    scenario: Path = SCENARIOS / "options_uac.xml"
    duration_s: float = 5.0
    start_rate: int = 1000
    #: Explicit rates, run in order up to the first failure; empty = search.
    rates: tuple[int, ...] = ()
    refine_steps: int = 3
    budget_s: float = 120.0
    transport: str = "u1"
    sipp_host: str = SIPP_HOST
    recv_timeout_ms: int = 2000
    max_retrans: int = 3
    #: SIP requests the server answers per scenario call (for CPU per request).
    requests_per_call: int = 1
    criteria: PassCriteria = field(default_factory=PassCriteria)
    #: More SIPp options for every step (``-inf FILE``, ``-d MS``).
    sipp_extra: tuple[str, ...] = ()
    #: Seconds a call lasts beyond its first response (the ``-d`` pause): calls
    #: outstanding at once (SIPp's ``-l``) and the step's time bound grow with it.
    call_hold_s: float = 0.0
    #: Runs around every step, e.g. the SIPp UAS that answers the calls:
    #: ``around_step(rate, calls, workdir)`` is entered before SIPp starts and left
    #: once it has stopped.
    around_step: Callable[[int, int, Path], contextlib.AbstractContextManager[object]] | None = None


@dataclass(frozen=True, slots=True)
class Percentiles:
    samples: int
    p50: float
    p95: float
    p99: float
    mean: float
    max: float


def percentiles(values: Sequence[float]) -> Percentiles | None:
    """Nearest-rank p50/p95/p99, mean and max, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]

    mean = sum(ordered) / len(ordered)
    return Percentiles(len(ordered), rank(50), rank(95), rank(99), mean, ordered[-1])


@dataclass(frozen=True, slots=True)
class StepResult:
    """One step at one rate: what SIPp saw, what the server spent, and the verdict."""

    target_rate: int
    duration_s: float
    calls: int
    successful: int
    failed: int
    retransmissions: int
    messages_sent: int
    elapsed_s: float
    achieved_rate: float
    rtt_ms: Percentiles | None
    server_cpu_us_per_request: float | None
    #: Server CPU over the step, in % of one core (a process tree may exceed 100).
    server_cpu_pct: float
    sipp_cpu_pct: float
    sipp_returncode: int
    #: Why the step failed; empty when it passed.
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def failed_pct(self) -> float:
        return 100.0 * self.failed / self.calls if self.calls else 0.0

    @property
    def retrans_pct(self) -> float:
        return 100.0 * self.retransmissions / self.messages_sent if self.messages_sent else 0.0


def judge(
    stats: SippStats, rate: int, duration_s: float, criteria: PassCriteria
) -> tuple[str, ...]:
    """The reasons a step failed, or () when it passed ``criteria``."""
    failures = []
    if stats.failed > criteria.max_failed_calls:
        failures.append(f"{stats.failed} failed calls")
    if (
        stats.messages_sent
        and stats.retransmissions > criteria.max_retrans_fraction * stats.messages_sent
    ):
        failures.append(f"{stats.retransmissions} retransmissions")
    wanted = criteria.min_rate_fraction * rate * duration_s
    if stats.successful < wanted:
        failures.append(f"{stats.successful} calls completed < {wanted:.0f}")
    achieved = stats.achieved_rate
    if achieved < criteria.min_rate_fraction * rate:
        failures.append(f"achieved {achieved:.0f}/s < {criteria.min_rate_fraction:.0%} of {rate}/s")
    return tuple(failures)


def step_calls(rate: int, duration_s: float) -> int:
    """Calls in one step: rate x duration, rounded up to a multiple of RTT_FREQ."""
    return max(RTT_FREQ, math.ceil(rate * duration_s / RTT_FREQ) * RTT_FREQ)


def run_step(server: RunningServer, config: SweepConfig, rate: int, workdir: Path) -> StepResult:
    """Drive ``server`` at ``rate`` calls/s for about ``config.duration_s`` and measure."""
    calls = step_calls(rate, config.duration_s)
    run = SippRun(
        scenario=config.scenario,
        target_host=server.spec.host,
        target_port=server.spec.port,
        local_host=config.sipp_host,
        local_port=free_port(config.sipp_host),
        rate=rate,
        calls=calls,
        # At most one second's worth of calls outstanding, plus the calls on hold.
        limit=max(200, math.ceil(rate * (1 + config.call_hold_s))),
        # Room for a slow generator (the rate check fails it) plus the last timeouts.
        timeout_s=math.ceil(
            2 * calls / rate + config.recv_timeout_ms / 1000 + 5 + config.call_hold_s
        ),
        transport=config.transport,
        recv_timeout_ms=config.recv_timeout_ms,
        max_retrans=config.max_retrans,
        extra=config.sipp_extra,
    )
    around = config.around_step(rate, calls, workdir) if config.around_step else None
    with around if around is not None else contextlib.nullcontext():
        ticks_before = server.cpu_ticks()
        started = time.monotonic()
        stats = run_sipp(run, workdir)
        wall_s = time.monotonic() - started
    server_cpu_s = (server.cpu_ticks() - ticks_before) / CLOCK_TICKS
    if server.process.poll() is not None:
        raise ServerError(server.describe(f"died during the {rate}/s step"))
    requests = stats.successful * config.requests_per_call
    return StepResult(
        target_rate=rate,
        duration_s=config.duration_s,
        calls=calls,
        successful=stats.successful,
        failed=stats.failed,
        retransmissions=stats.retransmissions,
        messages_sent=stats.messages_sent,
        elapsed_s=stats.elapsed_s,
        achieved_rate=stats.achieved_rate,
        rtt_ms=percentiles(stats.rtts_ms),
        server_cpu_us_per_request=1e6 * server_cpu_s / requests if requests else None,
        server_cpu_pct=100.0 * server_cpu_s / wall_s,
        sipp_cpu_pct=100.0 * stats.cpu_s / wall_s,
        sipp_returncode=stats.returncode,
        failures=judge(stats, rate, config.duration_s, config.criteria),
    )


# ---------------------------------------------------------------------- the sweep


class RateSearch:
    """Which rate next: double from ``start`` until a step fails, then bisect.

    The bisection runs between the highest passing and the lowest failing rate for at
    most ``refine_steps`` steps, or until the gap is under ``min_gap`` of the failing
    rate.  With explicit ``rates`` it runs them in order and stops at the first failure.
    """

    def __init__(self, start: int = 1000, *, rates: Sequence[int] = (), refine_steps: int = 3,
                 min_gap: float = 0.1):  # fmt: skip
        self.start = start
        self.explicit = list(rates)
        self.refine_steps = refine_steps
        self.min_gap = min_gap
        self.passed: list[int] = []
        self.failed: list[int] = []
        self._doubling_steps = 0  # steps up to and including the first failure

    def record(self, rate: int, passed: bool) -> None:
        if not passed and not self.failed:
            self._doubling_steps = len(self.passed) + 1
        (self.passed if passed else self.failed).append(rate)

    def next_rate(self) -> int | None:
        tried = len(self.passed) + len(self.failed)
        if self.explicit:
            return None if self.failed or tried >= len(self.explicit) else self.explicit[tried]
        if not self.failed:
            return 2 * self.passed[-1] if self.passed else self.start
        refined = tried - self._doubling_steps
        low, high = max(self.passed, default=0), min(self.failed)
        if refined >= self.refine_steps or high - low <= self.min_gap * high:
            return None
        middle = _round_rate((low + high) / 2)
        return middle if low < middle < high else None

    @property
    def best(self) -> int | None:
        return max(self.passed, default=None)


def _round_rate(rate: float) -> int:
    """Two significant figures: 24000, 2800, 750."""
    scale = 10 ** max(0, int(math.log10(rate)) - 1)
    return int(round(rate / scale) * scale)


def sweep(
    server: RunningServer, config: SweepConfig, workdir: Path
) -> tuple[list[StepResult], str | None]:
    """Run steps at the rates :class:`RateSearch` picks, within ``config.budget_s``.

    Returns the steps run and, when the server died or stopped answering (or SIPp
    failed by itself), what happened; the steps before that are kept.
    """
    search = RateSearch(config.start_rate, rates=config.rates, refine_steps=config.refine_steps)
    steps: list[StepResult] = []
    started = time.monotonic()
    try:
        while (rate := search.next_rate()) is not None:
            spent = time.monotonic() - started
            if spent + config.duration_s + STEP_OVERHEAD_S > config.budget_s:
                logger.info("%s: budget of %.0f s spent", server.spec.name, config.budget_s)
                break
            step = run_step(server, config, rate, workdir / f"step-{len(steps):02d}-{rate}")
            steps.append(step)
            search.record(rate, step.passed)
            logger.info("%s: %s", server.spec.name, _step_line(step))
            # Let the queues drain; the server must still answer before the next step.
            time.sleep(0.5 if step.passed else 1.0)
            server.wait_until_answering()
    except (ServerError, SippError) as exc:
        logger.error("%s", exc)
        return steps, str(exc)
    return steps, None


@dataclass(frozen=True, slots=True)
class ServerReport:
    name: str
    argv: tuple[str, ...]
    steps: tuple[StepResult, ...]
    error: str | None = None
    #: 1-minute load average when the server started: other work skews the numbers.
    loadavg: float = 0.0

    @property
    def best(self) -> StepResult | None:
        """The passing step with the highest target rate."""
        return max((s for s in self.steps if s.passed), key=lambda s: s.target_rate, default=None)


def bench(specs: Sequence[ServerSpec], config: SweepConfig, workdir: Path) -> list[ServerReport]:
    """Sweep every server in turn (one at a time, so they never share the CPU)."""
    reports = []
    for spec in specs:
        loadavg = os.getloadavg()[0]
        if loadavg > 0.5 * (os.cpu_count() or 1):
            logger.warning(
                "load average %.1f on %s CPUs: earlier or other work may skew the numbers",
                loadavg,
                os.cpu_count(),
            )
        serverdir = workdir / spec.name
        serverdir.mkdir(parents=True, exist_ok=True)
        steps: list[StepResult] = []
        error = None
        try:
            with running(spec, serverdir) as server:
                steps, error = sweep(server, config, serverdir)
        except (ServerError, SippError) as exc:
            logger.error("%s", exc)
            error = str(exc)
        reports.append(ServerReport(spec.name, spec.argv, tuple(steps), error, loadavg))
    return reports


# ------------------------------------------------------------------------- report


def rtt_resolution_ms() -> float:
    """Resolution of the clock SIPp 3.6.1 times responses with (CLOCK_MONOTONIC_COARSE)."""
    try:
        return 1000.0 * time.clock_getres(CLOCK_MONOTONIC_COARSE)
    except OSError:
        return float("nan")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _rtt_cells(rtt: Percentiles | None) -> tuple[str, str, str, str]:
    """p50, p95, p99 and mean as table cells."""
    if rtt is None:
        return ("-", "-", "-", "-")
    return (_ms(rtt.p50), _ms(rtt.p95), _ms(rtt.p99), f"{rtt.mean:.2f}")


def _step_line(step: StepResult) -> str:
    p50, p95, p99, _ = _rtt_cells(step.rtt_ms)
    verdict = "pass" if step.passed else "FAIL: " + "; ".join(step.failures)
    return (
        f"{step.target_rate}/s -> {step.achieved_rate:.0f}/s, {step.failed} failed, "
        f"{step.retransmissions} retrans, p50/p95/p99 {p50}/{p95}/{p99} ms, "
        f"{_ms(step.server_cpu_us_per_request)} us/req, {verdict}"
    )


TABLE_COLUMNS = (
    ("rate/s", 8), ("achieved", 9), ("ok", 7), ("fail%", 6), ("retrans", 7),
    ("p50ms", 6), ("p95ms", 6), ("p99ms", 6), ("mean ms", 7), ("us/req", 7),
    ("srvCPU%", 7), ("sippCPU%", 8), ("verdict", 0),
)  # fmt: skip


def format_table(report: ServerReport, *, unit: str = "req") -> str:
    """One line per step, in the order they ran; CPU per ``unit`` (a request, a call)."""
    lines = [f"== {report.name} (load average {report.loadavg:.1f}): {' '.join(report.argv)}"]
    if report.error:
        label = "stopped early" if report.steps else "not measured"
        lines.append(f"   {label}: {report.error.splitlines()[0]}")
    if report.steps:
        lines.append(
            " ".join(
                f"{'us/' + unit if name == 'us/req' else name:>{width}}"
                for name, width in TABLE_COLUMNS
            )
        )
    for s in report.steps:
        cells = (
            s.target_rate, f"{s.achieved_rate:.0f}", s.successful, f"{s.failed_pct:.2f}",
            s.retransmissions, *_rtt_cells(s.rtt_ms), _ms(s.server_cpu_us_per_request),
            f"{s.server_cpu_pct:.0f}", f"{s.sipp_cpu_pct:.0f}",
            "pass" if s.passed else "FAIL: " + "; ".join(s.failures),
        )  # fmt: skip
        widths = [width for _, width in TABLE_COLUMNS]
        lines.append(" ".join(f"{c!s:>{w}}" for c, w in zip(cells, widths, strict=True)))
    return "\n".join(lines)


def format_summary(reports: Sequence[ServerReport], *, numerator: str = "sipfarm",
                   denominator: str = "kamailio", unit: str = "req") -> str:  # fmt: skip
    """Max passing rate per server, its response times and CPU, and the rate ratio."""
    lines = [
        f"== summary (response times at SIPp's clock resolution, {rtt_resolution_ms():.0f} ms)",
        f"{'server':>10} {'max pass/s':>10} {'p50ms':>6} {'p95ms':>6} {'p99ms':>6} {'mean ms':>7} "
        f"{'us/' + unit:>7}",
    ]
    best: dict[str, int] = {}
    for report in reports:
        step = report.best
        if step is None:
            why = (report.error or "no step passed").splitlines()[0]
            lines.append(f"{report.name:>10} {'none':>10}  ({why})")
            continue
        best[report.name] = step.target_rate
        p50, p95, p99, mean = _rtt_cells(step.rtt_ms)
        lines.append(
            f"{report.name:>10} {step.target_rate:>10} {p50:>6} {p95:>6} {p99:>6} {mean:>7} "
            f"{_ms(step.server_cpu_us_per_request):>7}"
        )
    if numerator in best and denominator in best:
        lines.append(
            f"ratio {numerator}/{denominator} of max passing rates: "
            f"{best[numerator] / best[denominator]:.2f}"
        )
    return "\n".join(lines)


def _version(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout + out.stderr).strip()
    return next((line.strip() for line in text.splitlines() if line.strip()), "unknown")


def write_json(bench_name: str, config: SweepConfig, reports: Sequence[ServerReport],
               directory: Path = RESULTS) -> Path:  # fmt: skip
    """Write ``<directory>/<bench_name>-<timestamp>.json`` and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{bench_name}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    document = {
        "bench": bench_name,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "python": sys.version.split()[0],
            "sipp": _version([shutil.which("sipp") or "sipp", "-v"]),
            "kamailio": _version([shutil.which("kamailio") or "/usr/sbin/kamailio", "-v"]),
            "rtt_resolution_ms": rtt_resolution_ms(),
        },
        "config": _jsonable(config),
        "servers": [_jsonable(report) for report in reports],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def _jsonable(obj: object) -> object:
    """A dataclass as JSON data, with computed properties and paths as strings."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        data = {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        if isinstance(obj, StepResult):
            data.update(passed=obj.passed, failed_pct=obj.failed_pct, retrans_pct=obj.retrans_pct)
        if isinstance(obj, ServerReport):
            data["best"] = _jsonable(obj.best)
        return data
    if isinstance(obj, tuple | list):
        return [_jsonable(x) for x in obj]
    if isinstance(obj, Path):
        return str(obj.relative_to(REPO)) if obj.is_relative_to(REPO) else str(obj)
    if callable(obj):
        return getattr(obj, "__qualname__", repr(obj))
    return obj


def add_sweep_arguments(
    parser: argparse.ArgumentParser, *, unit: str, start_rate: int, servers: Sequence[str]
) -> None:
    """The options every benchmark's rate sweep takes: --rates, --start-rate, --only."""
    parser.add_argument(
        "--rates",
        type=lambda text: tuple(int(r) for r in text.split(",") if r),
        default=(),
        help=f"explicit rates in {unit}, run in order up to the first failure "
        "(default: double from --start-rate, then bisect)",
    )
    parser.add_argument(
        "--start-rate", type=int, default=start_rate, help=f"first rate ({start_rate})"
    )
    parser.add_argument("--only", choices=servers, help="measure one server only")
