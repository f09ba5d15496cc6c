"""A member process with transport limits the CLI does not expose (yet).

``sipfarm member`` takes no option for the limits of :class:`TransportConfig`
(idle timeout, connections per source, garbage budget, sizes).  Tests of those
limits need small values, so :func:`start_limited_member` runs this file as a
script: it builds the same :class:`~sipfarm.node.Member` the CLI builds, with the
limits given as JSON, and serves until SIGTERM/SIGINT exactly like
``sipfarm member`` (uvloop, logging to stderr, exit 0).

Readiness is that of :mod:`sipp` (it answers an OPTIONS over UDP) and then a TCP
connection accepted (:func:`wait_for_tcp`); it is stopped by PID with SIGTERM (SIGKILL
after a grace period).
"""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from sipp import READY_TIMEOUT_S, SIP_PORT, Member, fresh_loopback, options_probe, stop_process

from sipfarm.transport.config import TransportConfig

HERE = Path(__file__).resolve()


def wait_for_tcp(member: Member, timeout_s: float = READY_TIMEOUT_S) -> Member:
    """Return ``member`` once its TCP port accepts a connection; raise RuntimeError if not.

    Answering OPTIONS over UDP (the readiness of :func:`sipp.start_member`) does not
    mean TCP is listening: ``Member.start`` serves UDP before it binds TCP.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if member.process.poll() is not None:
            raise RuntimeError(
                f"member exited {member.process.returncode}:\n{member.stderr_text()}"
            )
        try:
            with socket.create_connection((member.host, member.port), timeout=1.0):
                return member
        except OSError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"member TCP not listening within {timeout_s:.0f} s ({exc}):\n"
                    f"{member.stderr_text()}"
                ) from None
        time.sleep(0.05)  # poll interval while the member binds TCP


def start_limited_member(
    workdir: Path,
    limits: TransportConfig,
    host: str | None = None,
    port: int = SIP_PORT,
    debug: bool = False,
) -> Member:
    """Start a member with ``limits`` on ``host:port`` (a fresh loopback address by default).

    Returns once it answers an OPTIONS over UDP; otherwise stops it and raises
    RuntimeError with its stderr.
    """
    host = host or fresh_loopback(port)
    stderr_path = workdir / f"limited-member-{host}-{port}.stderr"
    argv = [sys.executable, str(HERE), host, str(port), json.dumps(dataclasses.asdict(limits))]
    if debug:
        argv.append("--debug")
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
                return wait_for_tcp(member)
            time.sleep(0.05)  # poll interval: a refused probe returns at once
        raise RuntimeError(
            f"member did not answer OPTIONS within {READY_TIMEOUT_S:.0f} s:\n{member.stderr_text()}"
        )
    except BaseException:
        stop_process(process)
        raise


def _serve(argv: list[str]) -> int:
    """``member_proc.py HOST PORT LIMITS_JSON [--debug]``: what ``sipfarm member`` does."""
    import uvloop

    from sipfarm.log import setup
    from sipfarm.node import Member as SipMember
    from sipfarm.node import MemberConfig

    host, port, limits = argv[0], int(argv[1]), TransportConfig(**json.loads(argv[2]))
    setup("--debug" in argv[3:])
    try:
        uvloop.run(SipMember(MemberConfig(host=host, port=port, transport=limits)).run())
    except OSError as exc:
        print(f"member_proc: cannot serve on {host}:{port}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_serve(sys.argv[1:]))
