"""The farm under test: etcd, members, the balancer's monitor, and SIPp, in namespaces.

:class:`Farm` starts, on a :class:`netns.Topology`:

- one etcd (Debian ``/usr/bin/etcd``, single node, data in the test's tmp dir) in
  the ``etcd`` namespace;
- members ``m1``..``m3``, each ``sipfarm member`` in its own namespace, all on ONE
  data directory (the shared storage), advertising the VIP, tokens ``m1``..``m3``;
- the balancer's health monitor (``lbmonitor.py``) in ``lb``;

and stops every process it started by PID (:meth:`Farm.close`).  Accounts are
provisioned in the shared storage before the members start.

:class:`SippProc` is one SIPp process in a namespace, bounded in calls and time;
:meth:`SippProc.quit` asks it to stop placing calls and finish those under way
(SIGUSR1), :meth:`SippProc.finish` waits and returns its final statistics.

:func:`lookup` asks the registrar for the bindings of AORs with a REGISTER without
Contact (RFC 3261 §10.2.3) from a trusted address, through the VIP or straight to a
member, and says which expected contacts are missing.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import secrets
import select
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netns import (
    CLUSTER_PORT,
    ETCD_IP,
    HTTP_PORT,
    INNER_LB,
    INNER_NET,
    NFT_TABLE,
    SIP_PORT,
    VIP,
    Topology,
    http_json,
    socket_in,
)
from sipp import SippError, SippStats, stop_process
from sippcalls import DOMAIN, make_data

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SIPFARM = REPO / ".venv" / "bin" / "sipfarm"
PYTHON = REPO / ".venv" / "bin" / "python"
SCENARIOS = HERE / "scenarios"
LOAD_SCENARIOS = REPO / "loadtest" / "scenarios"
ETCD = "/usr/bin/etcd"

#: Who the members trust (no challenge): the inner network (balancer, members), the
#: caller (an SBC in front of the farm) and the lookup address.  Phones that register
#: and the callee are challenged (digest).
TRUSTED = (INNER_NET, "198.51.100.3/32", "198.51.100.5/32", "198.51.100.16/30")

READY_TIMEOUT_S = 20.0

#: How the balancer's monitor probes members: HTTP ``GET /health`` on the admin port.
#: (SIP OPTIONS to the member is what an operator would rather use; it is tested on
#: its own in test_health.py, and ``lbmonitor.py --probe sip`` does it.)
PROBE = "http"


def wait_for(check: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``check()`` until it returns something true; raise AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(interval)


# ------------------------------------------------------------------------------ SIP


def _query(user: str, local: tuple[str, int], call_id: str) -> bytes:
    host, port = local
    return (
        f"REGISTER sip:{DOMAIN} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{user}@{DOMAIN}>;tag={secrets.token_hex(4)}\r\n"
        f"To: <sip:{user}@{DOMAIN}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 REGISTER\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


_CALL_ID = re.compile(rb"^(?:call-id|i)[ \t]*:[ \t]*(\S+)", re.M | re.I)
_CONTACT = re.compile(rb"^(?:contact|m)[ \t]*:[ \t]*(.*)$", re.M | re.I)


@dataclass
class Lookup:
    """What one target said about the expected bindings."""

    target: str
    checked: int = 0
    lost: list[str] = field(default_factory=list)  # "user: why"


def lookup(
    ns: str,
    source: str,
    target: tuple[str, int],
    expected: dict[str, str],
    *,
    sockets: int = 4,
    rounds: int = 5,
    wait: float = 0.6,
) -> Lookup:
    """Look up ``expected`` (user -> contact URI) at ``target`` with REGISTER queries.

    Sent from ``sockets`` UDP sockets on ``source`` in namespace ``ns`` (several
    flows, so that through the VIP the queries spread over the members); each
    unanswered query is sent again, up to ``rounds`` times.
    """
    result = Lookup(f"{target[0]}:{target[1]}")
    socks = [socket_in(ns, bind=(source, 0)) for _ in range(sockets)]
    try:
        ids = {f"q{secrets.token_hex(6)}-{user}": user for user in expected}
        answers: dict[str, bytes] = {}
        for _ in range(rounds):
            pending = [cid for cid in ids if cid not in answers]
            if not pending:
                break
            for i, cid in enumerate(pending):
                sock = socks[i % len(socks)]
                sock.sendto(_query(ids[cid], sock.getsockname(), cid), target)
                if i % 50 == 49:
                    time.sleep(0.01)  # pace: the burst stays within socket buffers
            deadline = time.monotonic() + wait
            while (left := deadline - time.monotonic()) > 0:
                ready, _, _ = select.select(socks, [], [], left)
                for sock in ready:
                    with contextlib.suppress(OSError):
                        data = sock.recv(65535)
                        m = _CALL_ID.search(data)
                        if m and data.startswith(b"SIP/2.0 ") and int(data[8:11]) >= 200:
                            answers[m.group(1).decode()] = data
        for cid, user in ids.items():
            result.checked += 1
            data = answers.get(cid)
            if data is None:
                result.lost.append(f"{user}: no answer")
                continue
            if not data.startswith(b"SIP/2.0 200"):
                first = data.split(b"\r\n", 1)[0].decode()
                result.lost.append(f"{user}: {first}")
                continue
            contacts = b" ".join(_CONTACT.findall(data)).decode().lower()
            if expected[user].lower() not in contacts:
                result.lost.append(f"{user}: {expected[user]} not in [{contacts}]")
    finally:
        for sock in socks:
            sock.close()
    return result


def options_status(ns: str, host: str, port: int = SIP_PORT, timeout: float = 0.5) -> int | None:
    """The status of an OPTIONS to ``sip:host:port`` from namespace ``ns``, or None."""
    sock = socket_in(ns)
    try:
        sock.connect((host, port))
        lhost, lport = sock.getsockname()
        sock.send(
            (
                f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {lhost}:{lport};branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:probe@{lhost}>;tag={secrets.token_hex(4)}\r\n"
                f"To: <sip:{host}:{port}>\r\nCall-ID: {secrets.token_hex(8)}\r\n"
                "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            ).encode()
        )
        sock.settimeout(timeout)
        try:
            data = sock.recv(65535)
        except OSError:
            return None
        return int(data[8:11]) if data.startswith(b"SIP/2.0 ") else None
    finally:
        sock.close()


# ----------------------------------------------------------------------------- SIPp


class SippProc:
    """One SIPp process inside a namespace: a UAC when ``target`` is given, else a UAS."""

    def __init__(
        self,
        topo: Topology,
        role: str,
        workdir: Path,
        scenario: Path,
        local_host: str,
        *,
        target: str | None = None,
        local_port: int = 0,
        transport: str = "u1",
        calls: int = 1,
        rate: float = 10,
        timeout: float = 60.0,
        extra: Sequence[str] = (),
    ):
        self.workdir = workdir
        self.timeout = timeout
        workdir.mkdir(parents=True)
        port = (
            ["-p", str(local_port)] if local_port else ["-p", str(20000 + secrets.randbelow(20000))]
        )
        argv = topo.exec_argv(
            role, "sipp", *([target] if target else []), "-sf", str(scenario), "-t", transport,
            "-i", local_host, "-bind_local", *port, "-ci", local_host,
            "-m", str(calls), "-r", f"{rate:g}", "-rp", "1000", "-l", str(min(max(calls, 1), 3000)),
            "-timeout", f"{math.ceil(timeout)}s", "-recv_timeout", "20000",
            "-max_invite_retrans", "7", "-max_non_invite_retrans", "7",
            "-max_reconnect", "10", "-reconnect_close", "false", "-reconnect_sleep", "200",
            "-nostdin", "-max_socket", "10000", "-trace_stat", "-stf", "stat.csv", "-fd", "1",
            "-trace_err", "-error_file", "errors.log", "-trace_logs", "-log_file", "logs.log",
            *extra,
            *(["-trace_msg"] if os.environ.get("SIPFARM_SIPP_TRACE") else []),
        )  # fmt: skip
        self.argv = argv
        with (workdir / "stdout").open("wb") as out:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=workdir
            )

    def quit(self) -> None:
        """Stop placing new calls; those under way finish (SIPp's soft quit)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGUSR1)

    def finish(self, wait: float | None = None) -> SippStats:
        """Wait ``wait`` seconds (default: its timeout and more) for SIPp to end, then stop
        it by PID; its final statistics."""
        try:
            self.process.wait(self.timeout + 15 if wait is None else wait)
        except subprocess.TimeoutExpired:
            pass
        finally:
            returncode = stop_process(self.process)
        output = (self.workdir / "stdout").read_text(errors="replace")
        stat_path = self.workdir / "stat.csv"
        if not stat_path.exists():
            raise SippError(f"sipp exited {returncode} without statistics: {output[-2000:]}")
        lines = [line.split(";") for line in stat_path.read_text().splitlines() if line]
        if len(lines) < 2:
            raise SippError(f"sipp exited {returncode} with no statistics row: {output[-2000:]}")
        final = dict(zip(lines[0], lines[-1], strict=False))
        return SippStats(
            returncode=returncode,
            created=int(final["TotalCallCreated"]),
            successful=int(final["SuccessfulCall(C)"]),
            failed=int(final["FailedCall(C)"]),
            retransmissions=int(final["Retransmissions(C)"]),
            errors=self.errors(),
            stderr=output[-4000:],
        )

    def errors(self) -> str:
        with contextlib.suppress(FileNotFoundError):
            return (self.workdir / "errors.log").read_text(errors="replace")
        return ""

    def logs(self) -> str:
        with contextlib.suppress(FileNotFoundError):
            return (self.workdir / "logs.log").read_text(errors="replace")
        return ""

    def wait_bound(self, host: str, port: int, ns_role: str, topo: Topology) -> None:
        """Return once SIPp has bound ``host:port`` (UDP) in its namespace."""

        def bound() -> bool:
            if self.process.poll() is not None:
                raise SippError(f"sipp exited {self.process.returncode} before binding")
            try:
                socket_in(topo.ns(ns_role), bind=(host, port)).close()
            except OSError:
                return True
            return False

        wait_for(bound, 5.0, f"sipp bound {host}:{port}", 0.02)


def write_csv(path: Path, rows: Iterable[Sequence[str]]) -> Path:
    path.write_text("SEQUENTIAL\n" + "".join(";".join(row) + "\n" for row in rows))
    return path


# ---------------------------------------------------------------------------- farm


@dataclass(eq=False)
class MemberProc:
    name: str
    ip: str
    process: subprocess.Popen[bytes]
    log: Path
    started: float

    @property
    def pid(self) -> int:
        return self.process.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass(frozen=True, slots=True)
class Event:
    at: float
    member: str
    text: str
    pool: tuple[str, ...]


class Farm:
    """The farm of one test on ``topo``; see the module docstring."""

    def __init__(self, topo: Topology, workdir: Path, accounts: dict[str, str]):
        self.topo = topo
        self.workdir = workdir
        self.data = make_data(workdir / "shared", accounts)
        self.members: dict[str, MemberProc] = {}
        self.etcd: subprocess.Popen[bytes] | None = None
        self.monitor: subprocess.Popen[bytes] | None = None
        self.monitor_log = workdir / "monitor.log"
        self._others: list[subprocess.Popen[bytes]] = []

    # -- etcd --------------------------------------------------------------------------

    def start_etcd(self) -> None:
        # A fresh balancer state for this farm: no flow of an earlier test sticks.
        flush = self.topo.exec_argv("lb", "conntrack", "-F")
        subprocess.run(flush, capture_output=True, check=False)
        data = self.workdir / "etcd"
        log = self.workdir / "etcd.log"
        argv = self.topo.exec_argv(
            "etcd", ETCD, "--name", "sft", "--data-dir", str(data),
            "--listen-client-urls", f"http://{ETCD_IP}:2379",
            "--advertise-client-urls", f"http://{ETCD_IP}:2379",
            "--listen-peer-urls", f"http://{ETCD_IP}:2380",
            "--initial-advertise-peer-urls", f"http://{ETCD_IP}:2380",
            "--initial-cluster", f"sft=http://{ETCD_IP}:2380",
        )  # fmt: skip
        with log.open("wb") as out:
            self.etcd = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)

        def ready() -> bool:
            assert self.etcd is not None
            if self.etcd.poll() is not None:
                raise RuntimeError(f"etcd exited: {log.read_text()[-2000:]}")
            return b"ready to serve client requests" in log.read_bytes()

        wait_for(ready, 15, "etcd ready")

    # -- members -----------------------------------------------------------------------

    def member_argv(self, name: str) -> list[str]:
        ip = self.topo.members[name]
        trusted = [a for t in TRUSTED for a in ("--trusted", t)]
        return self.topo.exec_argv(
            name, str(SIPFARM), "member", "--sip", f"{ip}:{SIP_PORT}",
            "--advertise", f"{VIP}:{SIP_PORT}", "--cluster", f"{ip}:{CLUSTER_PORT}",
            "--etcd", f"{ETCD_IP}:2379", "--http", f"{ip}:{HTTP_PORT}",
            "--data", str(self.data), "--token", name, *trusted,
        )  # fmt: skip

    def start_member(self, name: str, wait: bool = True) -> MemberProc:
        ip = self.topo.members[name]
        n = sum(1 for p in self.workdir.glob(f"{name}.*.log"))
        log = self.workdir / f"{name}.{n}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                self.member_argv(name), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, cwd=self.workdir,
            )  # fmt: skip
        member = MemberProc(name, ip, process, log, time.time())
        self.members[name] = member
        if wait:
            self.wait_member_ready(name)
        return member

    def wait_member_ready(self, name: str, timeout: float = READY_TIMEOUT_S) -> None:
        member = self.members[name]

        def ready() -> bool:
            if member.process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited {member.process.returncode}:\n{member.text()[-3000:]}"
                )
            return self.health(name) == 200

        try:
            wait_for(ready, timeout, f"{name} answers GET /health 200")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{member.text()[-3000:]}") from None

    def health(self, name: str) -> int | None:
        """The status of ``GET /health`` on a member, or None when it does not answer."""
        try:
            code, _ = http_json(self.topo.ns("lb"), self.topo.members[name], HTTP_PORT,
                                "GET", "/health", timeout=1.0)  # fmt: skip
        except (OSError, ValueError):
            return None
        return code

    def status(self, name: str) -> dict[str, Any] | None:
        """``GET /status`` of a member, or None when it does not answer."""
        try:
            code, body = http_json(self.topo.ns("lb"), self.topo.members[name], HTTP_PORT,
                                   "GET", "/status", timeout=2.0)  # fmt: skip
        except (OSError, ValueError):
            return None
        return body if code == 200 else None

    def post(self, name: str, path: str) -> dict[str, Any]:
        code, body = http_json(self.topo.ns("lb"), self.topo.members[name], HTTP_PORT,
                               "POST", path)  # fmt: skip
        assert code == 200, f"POST {path} to {name}: {code} {body}"
        return body

    def wait_view(self, names: Sequence[str], timeout: float = READY_TIMEOUT_S) -> None:
        """Until every member in ``names`` sees exactly ``names`` on its ring."""
        want = sorted(names)

        def agreed() -> bool:
            for name in names:
                st = self.status(name)
                view = (st or {}).get("view") or {}
                if sorted(view.get("ring", [])) != want:
                    return False
            return True

        try:
            wait_for(agreed, timeout, f"every member's ring is {want}", 0.2)
        except AssertionError as exc:
            views = {n: ((self.status(n) or {}).get("view")) for n in names}
            raise AssertionError(f"{exc}: {views}") from None

    def signal(self, name: str, sig: int) -> None:
        self.members[name].process.send_signal(sig)

    def stop_member(self, name: str) -> int:
        return stop_process(self.members[name].process, 10.0)

    # -- the balancer's monitor ----------------------------------------------------------

    def start_monitor(self, names: Sequence[str]) -> None:
        members = [a for n in names for a in ("--member", f"{n}={self.topo.members[n]}")]
        argv = self.topo.exec_argv(
            "lb", str(PYTHON), str(HERE / "lbmonitor.py"), "--log", str(self.monitor_log),
            "--table", NFT_TABLE, "--source", INNER_LB, "--probe", PROBE, *members,
        )  # fmt: skip
        with (self.workdir / "monitor.stderr").open("wb") as err:
            self.monitor = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err)

    def events(self) -> list[Event]:
        out = []
        with contextlib.suppress(FileNotFoundError):
            for line in self.monitor_log.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 4:
                    pool = tuple(p for p in parts[-1].removeprefix("pool=").split(",") if p)
                    out.append(Event(float(parts[0]), parts[1], " ".join(parts[2:-1]), pool))
        return out

    def pool(self) -> tuple[str, ...]:
        """The members in rotation, as the monitor last set them."""
        events = self.events()
        return events[-1].pool if events else ()

    def wait_pool(self, names: Iterable[str], timeout: float = 15.0) -> None:
        want = tuple(sorted(names))
        wait_for(lambda: tuple(sorted(self.pool())) == want, timeout,
                 f"balancer pool {want} (now {self.pool()})")  # fmt: skip

    def left_rotation(self, name: str, since: float, timeout: float = 15.0) -> float:
        """Seconds from ``since`` until the monitor took ``name`` out of rotation."""

        def left() -> float | None:
            for e in self.events():
                if e.at >= since and e.member == name and e.text.startswith("out"):
                    return e.at - since
            return None

        found: float = wait_for(lambda: left() is not None and (left() or 1e-9), timeout,
                                f"{name} left the rotation")  # fmt: skip
        return found

    # -- the end -----------------------------------------------------------------------

    def close(self) -> None:
        for member in self.members.values():
            with contextlib.suppress(ProcessLookupError):
                member.process.send_signal(signal.SIGCONT)
            stop_process(member.process, 5.0)
        for proc in (self.monitor, self.etcd, *self._others):
            if proc is not None:
                stop_process(proc, 5.0)

    def describe(self) -> str:
        """The tails of every log, for an assertion message."""
        parts = [
            f"--- monitor ---\n{self.monitor_log.read_text() if self.monitor_log.exists() else ''}"
        ]
        for log in sorted(self.workdir.glob("m*.log")):
            lines = [line for line in log.read_text(errors="replace").splitlines()
                     if "WARNING" in line or "ERROR" in line or "Traceback" in line]  # fmt: skip
            parts.append(
                f"--- {log.name} (warnings and errors, last 40) ---\n" + "\n".join(lines[-40:])
            )
        parts.append(f"--- balancer flows to the VIP that no member answers ---\n{self.unmapped()}")
        return "\n".join(parts)

    def unmapped(self) -> str:
        """The balancer's conntrack entries to the VIP's SIP port that were not DNATed to a
        member (their reply comes from the VIP itself): a phone whose flow is one of these
        reaches nobody until the entry times out.  For a failed test's message."""
        done = subprocess.run(
            self.topo.exec_argv("lb", "conntrack", "-L", "--orig-dst", VIP),
            capture_output=True, text=True, check=False, timeout=10,
        )  # fmt: skip
        lines = []
        for line in done.stdout.splitlines():
            srcs = re.findall(r"src=(\S+)", line)
            if f"dport={SIP_PORT}" in line and len(srcs) == 2 and srcs[1] == VIP:
                lines.append(line)
        return "\n".join(lines[:20]) or "(none)"


#: Every report of the session, printed again in pytest's terminal summary (conftest.py).
REPORTS: list[str] = []


def print_report(title: str, figures: dict[str, Any]) -> None:
    """Print what a test measured (and keep it for the session's summary)."""
    width = max(len(k) for k in figures)
    lines = [f"== {title} =="] + [f"  {k:<{width}}  {v}" for k, v in figures.items()]
    text = "\n".join(lines)
    REPORTS.append(text)
    print(text)
