"""Farm members on loopback with a real etcd, sharing one storage directory, and a UDP phone.

What the farm tests (``test_farm_loopback.py``, ``test_store_farm.py``) start and talk to:

- :class:`LoopbackFarm`: an etcd on a fresh loopback address and ``sipfarm member``
  processes, each on its own 127.x.y.z:5060 with its cluster link and admin endpoint,
  all on one ``--data`` directory and trusting 127.0.0.0/8 (no digest challenge).
  Members are started, stopped (SIGTERM, SIGKILL after a grace period) and started
  again under their token and address; :func:`loopback_farm` stops every process it
  started, by PID, whatever the test did;
- :func:`until`: poll a condition, bounded in time;
- :func:`register_request`, :func:`register` and :func:`contacts`: a phone's
  REGISTER (RFC 3261 §10.2) and query (§10.2.3) over UDP.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sipp import fresh_loopback
from sippcalls import DOMAIN

from cluster.etcdproc import EtcdProcess, free_port

SIP_PORT = 5060
#: How long a member may take to say it is ready, and to stop after SIGTERM.
READY_S = 15.0
STOP_S = 10.0


@dataclass
class Proc:
    """A member process and where to ask it."""

    token: str
    host: str
    http: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def sip(self) -> tuple[str, int]:
        return self.host, SIP_PORT

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://{self.host}:{self.http}/status", timeout=2) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]

    def post(self, path: str) -> None:
        req = urllib.request.Request(f"http://{self.host}:{self.http}{path}", method="POST")
        urllib.request.urlopen(req, timeout=2).close()

    def ring(self) -> list[str]:
        return self.status()["view"]["ring"]  # type: ignore[no-any-return]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def returncode(self) -> int | None:
        return self.process.poll()


def until(check: Callable[[], object], timeout: float = 15.0, what: str = "") -> None:
    """Return once ``check()`` is true (an OSError counts as not yet); AssertionError after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.1)


class LoopbackFarm:
    """An etcd and the members started on it (see the module docstring)."""

    def __init__(self, workdir: Path, data: Path, advertise: str | None = None) -> None:
        self.workdir = workdir
        self.data = data
        self.advertise = advertise  # host:port every member shows phones (a VIP)
        self.etcd = EtcdProcess(workdir / "etcd", host=fresh_loopback(2379))
        self.members: dict[str, Proc] = {}

    def start(self, token: str, host: str | None = None) -> Proc:
        """Start member ``token`` (on ``host``, a fresh loopback address by default); its
        log goes on in ``<token>.log`` across restarts.  Not waited for: see `ready`."""
        host = host or fresh_loopback(SIP_PORT)
        http = free_port(host)
        log = self.workdir / f"{token}.log"
        argv = [
            sys.executable, "-m", "sipfarm", "member",
            "--sip", f"{host}:{SIP_PORT}", "--data", str(self.data), "--token", token,
            "--etcd", f"{self.etcd.client[0]}:{self.etcd.client[1]}",
            "--cluster", f"{host}:{free_port(host)}", "--http", f"{host}:{http}",
            "--trusted", "127.0.0.0/8",
        ]  # fmt: skip
        if self.advertise:
            argv += ["--advertise", self.advertise]
        with log.open("ab") as out:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        proc = Proc(token, host, http, process, log)
        self.members[token] = proc
        return proc

    def ready(self, *procs: Proc) -> None:
        """Wait until each of ``procs`` says it is ready (AssertionError with its log if not)."""
        for p in procs:

            def up(p: Proc = p) -> bool:
                if p.process.poll() is not None:
                    raise AssertionError(f"{p.token} exited {p.returncode()}:\n{p.log_text()}")
                return p.status()["state"] == "ready"

            until(up, READY_S, f"{p.token} ready")

    def ring_is(self, tokens: Iterable[str], timeout: float = READY_S) -> None:
        """Wait until every running member's ring is ``tokens``."""
        want = sorted(tokens)
        until(
            lambda: all(p.ring() == want for p in self.running()),
            timeout,
            f"the ring {want} on every member",
        )

    def running(self) -> list[Proc]:
        return [p for p in self.members.values() if p.process.poll() is None]

    def stop(self, *procs: Proc) -> list[int]:
        """SIGTERM to each of ``procs`` at once, SIGKILL to those still there after STOP_S;
        their exit statuses."""
        for p in procs:
            if p.process.poll() is None:
                p.process.send_signal(signal.SIGTERM)
        statuses = []
        for p in procs:
            try:
                p.process.wait(STOP_S)
            except subprocess.TimeoutExpired:
                p.process.kill()
                p.process.wait()
            statuses.append(p.process.returncode)
        return statuses

    def restart(self, *procs: Proc) -> list[Proc]:
        """Stop ``procs`` (each must exit 0) and start them again on their addresses."""
        statuses = self.stop(*procs)
        assert statuses == [0] * len(procs), [(p.token, p.log_text()[-3000:]) for p in procs]
        again = [self.start(p.token, p.host) for p in procs]
        self.ready(*again)
        return again

    def close(self) -> None:
        try:
            self.stop(*self.members.values())
        finally:
            self.etcd.stop()


@contextlib.contextmanager
def loopback_farm(
    workdir: Path, data: Path, tokens: Sequence[str], advertise: str | None = None
) -> Iterator[LoopbackFarm]:
    """A farm of ``tokens`` on ``data``, each member ready and the ring complete; every
    process it started is stopped afterwards.  ``advertise``: the address all members
    show in Via and Record-Route, as behind a balancer's VIP (none listens on it here)."""
    farm = LoopbackFarm(workdir, data, advertise)
    farm.etcd.start()
    try:
        procs = [farm.start(token) for token in tokens]
        farm.ready(*procs)
        farm.ring_is(tokens)
        yield farm
    finally:
        farm.close()


# ------------------------------------------------------------------------------ a phone

_CSEQ = itertools.count(1)  # register(): one Call-ID per user and process, its CSeq grows
_URI = re.compile(r"<([^>]*)>")


def register_request(
    port: int,
    user: str,
    call_id: str,
    cseq: int,
    bindings: Sequence[tuple[str, int]] = (),
) -> bytes:
    """A REGISTER for ``user``'s AOR from 127.0.0.1:``port``: one Contact per
    ``(uri, expires)`` of ``bindings`` (none: a query)."""
    contact = "".join(f"Contact: <{uri}>;expires={expires}\r\n" for uri, expires in bindings)
    return (
        f"REGISTER sip:{DOMAIN} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call_id}-{cseq};rport\r\n"
        f"Max-Forwards: 70\r\nTo: <sip:{user}@{DOMAIN}>\r\n"
        f"From: <sip:{user}@{DOMAIN}>;tag=t{user}\r\nCall-ID: {call_id}\r\n"
        f"CSeq: {cseq} REGISTER\r\n{contact}Content-Length: 0\r\n\r\n"
    ).encode()


def _answer(sock: socket.socket, member: tuple[str, int], call_id: str) -> bytes:
    """The answer to ``call_id`` (others are dropped), which must come from ``member``."""
    while True:
        data, sender = sock.recvfrom(65535)
        if f"Call-ID: {call_id}\r\n".encode() in data:
            assert sender == member, f"answer from {sender}, not from {member}"
            return data


def register(sock: socket.socket, member: tuple[str, int], user: str, expires: int = 300) -> str:
    """One REGISTER of ``sip:user@127.0.0.1:<the socket's port>``; the answer's status line."""
    port = sock.getsockname()[1]
    call_id = f"reg-{user}-{os.getpid()}"
    contact = f"sip:{user}@127.0.0.1:{port}"
    cseq = next(_CSEQ)
    sock.sendto(register_request(port, user, call_id, cseq, [(contact, expires)]), member)
    return _answer(sock, member, call_id).split(b"\r\n", 1)[0].decode()


def contacts(sock: socket.socket, member: tuple[str, int], user: str) -> list[str]:
    """The Contact lines of the 200 to a query (a REGISTER without Contact, §10.2.3)."""
    call_id = f"query-{user}-{time.monotonic_ns()}"
    sock.sendto(register_request(sock.getsockname()[1], user, call_id, 1), member)
    data = _answer(sock, member, call_id)
    assert data.startswith(b"SIP/2.0 200"), data[:200]
    return [line for line in data.decode().split("\r\n") if line.lower().startswith("contact:")]


def contact_uris(lines: Iterable[str]) -> set[str]:
    """The URIs of the Contact lines :func:`contacts` returns."""
    return {m.group(1) for line in lines if (m := _URI.search(line))}
