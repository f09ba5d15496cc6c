"""Real processes for the integration tests: a sipfarm member, and SIPp to talk to it.

- :func:`start_member` starts ``.venv/bin/sipfarm member --sip HOST:PORT`` and waits
  until it answers an OPTIONS over UDP, or stops it and raises with its stderr;
- :func:`stop_process` stops a process by PID: SIGTERM, SIGKILL after 5 s;
- :func:`run_sipp` runs one SIPp scenario bounded in calls and time and returns its
  final statistics.

Only loopback: every member gets a fresh 127.x.y.z address (:func:`fresh_loopback`).
The process, port and probe helpers are the benchmark harness's own
(``loadtest/harness.py``), loaded from there so that there is one copy of each.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import math
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def _load_harness() -> Any:
    spec = importlib.util.spec_from_file_location("harness", REPO / "loadtest" / "harness.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("harness", module)
    spec.loader.exec_module(module)
    return module


_HARNESS = _load_harness()
SippError = _HARNESS.SippError
port_is_free = _HARNESS.port_is_free
free_port = _HARNESS.free_port
options_probe = _HARNESS.options_probe
stop_process = _HARNESS.stop_process

SIPFARM = REPO / ".venv" / "bin" / "sipfarm"
SCENARIOS = REPO / "loadtest" / "scenarios"

SIP_PORT = 5060
READY_TIMEOUT_S = 10.0
STOP_GRACE_S = 5.0
ANSWER_S = 5.0  # how long a test waits for one answer from the member


# ------------------------------------------------------------------------- processes


def fresh_loopback(port: int = SIP_PORT) -> str:
    """A random 127.64-127.127.x.y address whose ``port`` is free on UDP and TCP."""
    for _ in range(100):
        a, b, c = 64 + secrets.randbelow(64), secrets.randbelow(256), 1 + secrets.randbelow(254)
        host = f"127.{a}.{b}.{c}"
        if port_is_free(host, port):
            return host
    raise RuntimeError("no free loopback address found")


@dataclass(eq=False)
class Member:
    """A running ``sipfarm member``."""

    host: str
    port: int
    process: subprocess.Popen[bytes]
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def target(self) -> str:
        """``host:port``, as SIPp takes it."""
        return f"{self.host}:{self.port}"

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def start_member(
    workdir: Path, host: str | None = None, port: int = SIP_PORT, extra: Sequence[str] = ()
) -> Member:
    """Start a member on ``host:port`` (a fresh loopback address by default).

    ``extra`` are more arguments for ``sipfarm member`` (``["--debug"]``).
    Returns once it answers an OPTIONS over UDP; otherwise stops it and raises
    RuntimeError with its stderr.
    """
    host = host or fresh_loopback(port)
    stderr_path = workdir / f"member-{host}-{port}.stderr"
    argv = [str(SIPFARM), "member", "--sip", f"{host}:{port}", *extra]
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=stderr, stderr=subprocess.STDOUT, cwd=workdir
        )
    member = Member(host, port, process, stderr_path)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"member exited {process.returncode}:\n{member.stderr_text()}")
            if options_probe(host, port) is not None:
                return member
            time.sleep(0.05)
        raise RuntimeError(
            f"member did not answer OPTIONS within {READY_TIMEOUT_S:.0f} s:\n{member.stderr_text()}"
        )
    except BaseException:
        stop_process(process)
        raise


class TcpPeer:
    """A TCP connection from the member's loopback address, reading whole SIP messages."""

    def __init__(self, host: str, port: int):
        self.sock = socket.create_connection(
            (host, port), timeout=ANSWER_S, source_address=(host, 0)
        )
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _cut(self) -> bytes | None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        m = re.search(rb"^(?:content-length|l)[ \t]*:[ \t]*(\d+)", self.buf[:end], re.M | re.I)
        assert m is not None, f"answer without Content-Length: {self.buf!r}"
        total = end + 4 + int(m.group(1))
        if len(self.buf) < total:
            return None
        message, self.buf = self.buf[:total], self.buf[total:]
        return message

    def read(self, timeout: float = ANSWER_S) -> bytes | None:
        """The next whole message, or None once the member has closed the connection.

        Raises AssertionError when neither happens within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while (message := self._cut()) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"neither a message nor a close in {timeout} s: {self.buf!r}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                return None
            if not data:
                return None
            self.buf += data
        return message

    def read_until_closed(self, timeout: float = ANSWER_S) -> list[bytes]:
        """Every message until the member closes the connection (which it must, in time)."""
        out: list[bytes] = []
        while (message := self.read(timeout)) is not None:
            out.append(message)
        return out

    def closed_within(self, timeout: float) -> bool:
        """Whether the member closes the connection within ``timeout``; it must send nothing."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        assert not data, f"unexpected bytes on a silent connection: {data!r}"
        return True


# ------------------------------------------------------------------------------ SIPp


@dataclass(frozen=True, slots=True)
class SippStats:
    """SIPp's final statistics (its ``-trace_stat`` file), and what it logged."""

    returncode: int
    created: int
    successful: int
    failed: int
    retransmissions: int
    #: Unexpected messages SIPp saw (``-trace_err``), for assertion messages.
    errors: str
    stderr: str


@contextlib.contextmanager
def admin_member(workdir: Path, data: Path) -> Iterator[tuple[Member, int]]:
    """A member on ``data`` with its admin HTTP endpoint (``--http``): it and that port.

    Stopped by PID afterwards; it must exit 0 on SIGTERM.
    """
    host = fresh_loopback()
    port = free_port(host)
    started = start_member(
        workdir, host=host, extra=["--data", str(data), "--http", f"{host}:{port}"]
    )
    try:
        yield started, port
    finally:
        status = stop_process(started.process)
    assert status == 0, f"member exited {status}:\n{started.stderr_text()}"


def _scenario_path(scenario: str | Path) -> Path:
    path = Path(scenario)
    if path.is_absolute() or path.exists():
        return path
    return SCENARIOS / (path.name if path.suffix == ".xml" else f"{path.name}.xml")


def run_sipp(
    scenario: str | Path,
    target: str,
    *,
    transport: str = "u1",
    calls: int = 100,
    rate: int = 100,
    timeout: float = 30.0,
    local_host: str | None = None,
) -> SippStats:
    """Run SIPp as a UAC against ``target`` (``host:port``) and return its final statistics.

    ``scenario`` is a path, or a name in ``loadtest/scenarios`` ("options_uac").  SIPp
    stops after ``calls`` calls or ``timeout`` seconds, whichever comes first, and is
    killed by PID if it overruns that.  It binds ``local_host`` (default: the target's
    host, a loopback address) on a free port.
    """
    host = target.rsplit(":", 1)[0]
    local_host = local_host or host
    sipp = shutil.which("sipp") or "/usr/bin/sipp"
    recv_timeout_ms = int(min(5.0, timeout / 2) * 1000)
    argv = [
        sipp, target, "-sf", str(_scenario_path(scenario)), "-t", transport,
        # Explicit -p: without it SIPp 3.6.1 tries 5060..5119 before a random port.
        "-i", local_host, "-bind_local", "-p", str(free_port(local_host)), "-ci", local_host,
        "-m", str(calls), "-r", str(rate), "-rp", "1000", "-l", str(max(calls, 1)),
        "-timeout", f"{math.ceil(timeout)}s", "-recv_timeout", str(recv_timeout_ms),
        "-max_non_invite_retrans", "3", "-max_invite_retrans", "3",
        "-nostdin", "-trace_stat", "-stf", "stat.csv", "-fd", "1",
        "-trace_err", "-error_file", "errors.log",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="sipp-") as tmp:
        workdir = Path(tmp)
        with (workdir / "stdout").open("wb") as out, (workdir / "stderr").open("wb") as err:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=workdir
            )
        try:
            process.wait(timeout + 10)
        except subprocess.TimeoutExpired:
            pass
        finally:
            returncode = stop_process(process)
        stderr = (workdir / "stderr").read_text(errors="replace")
        errors = ""
        with contextlib.suppress(FileNotFoundError):
            errors = (workdir / "errors.log").read_text(errors="replace")
        stat_path = workdir / "stat.csv"
        if not stat_path.exists():
            raise SippError(f"sipp exited {returncode} without statistics: {stderr.strip()}")
        with stat_path.open(newline="") as f:
            rows = list(csv.reader(f, delimiter=";"))
    if len(rows) < 2:
        raise SippError(f"sipp exited {returncode} with no statistics row: {stderr.strip()}")
    final = dict(zip(rows[0], rows[-1], strict=False))
    return SippStats(
        returncode=returncode,
        created=int(final["TotalCallCreated"]),
        successful=int(final["SuccessfulCall(C)"]),
        failed=int(final["FailedCall(C)"]),
        retransmissions=int(final["Retransmissions(C)"]),
        errors=errors,
        stderr=stderr,
    )
