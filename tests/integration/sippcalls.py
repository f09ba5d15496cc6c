"""SIPp runs with injection files and a fixed local port, for registrations and calls.

:func:`sipp.run_sipp` runs one UAC with no injection file; registrations and calls
need more: accounts in a CSV (``-inf``), a digest uri (``-auth_uri``), a call hold
(``-d``), and a SIPp UAS on a known port while a UAC calls it.  This module has:

- :func:`make_data`: an account store (``sipfarm member --data``) holding accounts;
- :func:`write_csv`: a SIPp injection file (``SEQUENTIAL`` and one line per call);
- :class:`Sipp`: one SIPp process, UAC or UAS, bounded in calls and time, stopped by
  PID; :meth:`Sipp.finish` waits for it and returns its final statistics.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from sipp import SCENARIOS, SippError, SippStats, free_port, stop_process

from mail.store import AccountStore

DOMAIN = "example.com"


def make_data(root: Path, accounts: dict[str, str], domain: str = DOMAIN) -> Path:
    """An account store under ``root`` with ``accounts`` (user -> password) at ``domain``."""
    store = AccountStore(root)
    store.add_domain(domain)
    for user, password in accounts.items():
        store.add_account(user, domain, password)
    return root


def write_csv(path: Path, rows: Iterable[Sequence[str]]) -> Path:
    """A SIPp injection file read in order: ``field0;field1;...`` per line."""
    path.write_text("SEQUENTIAL\n" + "".join(";".join(row) + "\n" for row in rows))
    return path


class Sipp:
    """One SIPp process on ``local_host:local_port`` (a free port by default).

    A UAC when ``target`` (``host:port``) is given, else a UAS that waits for calls.
    It stops by itself after ``calls`` calls or ``timeout`` seconds; :meth:`finish`
    waits a little longer, then stops it by PID regardless.
    """

    def __init__(
        self,
        workdir: Path,
        scenario: str,
        local_host: str,
        *,
        target: str | None = None,
        local_port: int | None = None,
        calls: int = 1,
        rate: int = 10,
        timeout: float = 20.0,
        extra: Sequence[str] = (),
    ):
        self.workdir = workdir
        self.timeout = timeout
        self.local_host = local_host
        self.local_port = local_port or free_port(local_host)
        workdir.mkdir(parents=True, exist_ok=False)
        sipp = shutil.which("sipp") or "/usr/bin/sipp"
        argv = [
            sipp, *([target] if target else []), "-sf", str(SCENARIOS / f"{scenario}.xml"),
            "-i", local_host, "-bind_local", "-p", str(self.local_port), "-ci", local_host,
            "-m", str(calls), "-r", str(rate), "-rp", "1000",
            "-timeout", f"{math.ceil(timeout)}s", "-recv_timeout", "5000",
            "-max_non_invite_retrans", "3", "-max_invite_retrans", "3",
            "-nostdin", "-trace_stat", "-stf", "stat.csv", "-fd", "1",
            "-trace_err", "-error_file", "errors.log", "-trace_msg", "-message_file", "msg.log",
            *extra,
        ]  # fmt: skip
        with (workdir / "stdout").open("wb") as out:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=workdir
            )

    def finish(self) -> SippStats:
        """Wait for SIPp to stop (or stop it), and return its final statistics."""
        try:
            self.process.wait(self.timeout + 10)
        except subprocess.TimeoutExpired:
            pass
        finally:
            returncode = stop_process(self.process)
        output = (self.workdir / "stdout").read_text(errors="replace")
        errors = ""
        with contextlib.suppress(FileNotFoundError):
            errors = (self.workdir / "errors.log").read_text(errors="replace")
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
            errors=errors,
            stderr=output[-4000:],
        )

    def messages(self) -> str:
        """Every message SIPp sent and received (``-trace_msg``), for assertion messages."""
        try:
            return (self.workdir / "msg.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_bound(self, timeout_s: float = 5.0) -> None:
        """Return once SIPp has bound its UDP port (a UAS is then ready for calls)."""
        deadline = time.monotonic() + timeout_s
        host = self.local_host
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SippError(f"sipp exited {self.process.returncode} before binding")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                try:
                    sock.bind((host, self.local_port))
                except OSError:
                    return
            time.sleep(0.02)  # poll interval while SIPp starts
        raise SippError(f"sipp did not bind {host}:{self.local_port} within {timeout_s} s")
