"""A local single-node etcd process (edge): what ``sipfarm up`` and the tests coordinate on.

DESIGN.md "Cluster": the embedded default starts one local etcd for the farm
itself.  :class:`EtcdProcess` runs the Debian binary on loopback, with its
data directory where the caller says, on free client and peer ports (or the
ones it is asked to reuse), waits until ``GET /health`` says it serves, and
stops it by PID (SIGTERM, then SIGKILL).

Restarts on the same data directory: etcd keeps its member id and the peer
URL of its first start in the data directory, and a single-node etcd that
restarts from there ignores ``--initial-cluster`` and never dials that peer
URL (it has no peer), so a restart works whatever peer port is free now.
What etcd held survives; the farm's member keys are bound to 2 s leases, so
those of a previous run expire by themselves.  ``sipfarm up`` still asks for
the ports of its previous run first, so that the address in ``farm.json``
stays the same when it can.

The child gets SIGTERM when the process that started it ends, even by
SIGKILL (Linux ``PR_SET_PDEATHSIG``, :func:`dies_with_this_process`): a
supervisor that is killed leaves no etcd behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Collection
from pathlib import Path

__all__ = ["EtcdError", "EtcdProcess", "can_listen", "dies_with_this_process", "free_port"]

#: The Debian package's binary (etcd-server); found on PATH otherwise.
ETCD_BINARY = "/usr/bin/etcd"

#: prctl(2) option: the signal a child gets when its parent ends.
PR_SET_PDEATHSIG = 1

#: Listening ports are picked from here up to the start of the ephemeral range.
LISTEN_LOW = 20000
EPHEMERAL_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"

#: How many times a start on ports chosen here is tried again when one was taken meanwhile.
PORT_RETRIES = 3


class EtcdError(RuntimeError):
    """etcd did not start (the message ends with the tail of its log)."""


def free_port(host: str, prefer: int | None = None, taken: Collection[int] = ()) -> int:
    """A TCP port on ``host`` that nothing uses now: ``prefer`` when it is free.

    Otherwise a random port below the kernel's ephemeral range, so that a listener
    started again later on the same port does not find it taken by the source port of
    some outgoing connection (those come from the ephemeral range).  ``taken``: ports
    already promised to others.  The port is only free at the time of asking: whoever
    binds it later may lose a race and has to be ready to ask again.
    """
    if prefer and prefer not in taken and can_listen(host, prefer):
        return prefer
    low = _ephemeral_low()
    if low - LISTEN_LOW >= 1000:
        for _ in range(100):
            port = LISTEN_LOW + secrets.randbelow(low - LISTEN_LOW)
            if port not in taken and can_listen(host, port):
                return port
    for _ in range(100):  # a machine whose ephemeral range leaves nothing below it
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in taken:
            return port
    raise OSError(f"no free TCP port on {host}")


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux; the IANA range elsewhere)."""
    try:
        return int(Path(EPHEMERAL_RANGE).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 49152


def can_listen(host: str, port: int) -> bool:
    """Whether a TCP listener could bind ``host:port`` now (TIME_WAIT does not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def dies_with_this_process() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when this process ends.

    So that a supervisor that is killed (SIGKILL, OOM) leaves no child behind.  Linux
    only (None elsewhere).  The signal follows the *thread* that started the child:
    start children from the main thread.  libc is loaded here, in the parent, because
    loading a library between fork and exec can deadlock.
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent ended before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


class EtcdProcess:
    """One etcd serving clients on ``host:client_port``, its data in ``data_dir``.

    ``client_port`` and ``peer_port`` of 0 (or taken) mean: any free port.  The log
    goes to ``log`` (default: beside the data directory, ``<data_dir>.log``).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        client_port: int = 0,
        peer_port: int = 0,
        log: Path | None = None,
        name: str = "sipfarm",
        binary: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.host = host
        self.wanted = (client_port, peer_port)
        self.client_port = 0
        self.peer_port = 0
        self.log = log or data_dir.with_name(data_dir.name + ".log")
        self.name = name
        self.binary = binary or _binary()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def client(self) -> tuple[str, int]:
        """The client address (what members and ``sipfarm status`` dial)."""
        return self.host, self.client_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.client_port}"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- life cycle ---------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> None:
        """Start etcd and return once it serves; EtcdError (it is stopped) otherwise.

        Ports chosen here are chosen again when etcd could not bind them (another
        process took one between the choice and the bind).
        """
        for attempt in range(PORT_RETRIES + 1):
            client, peer = self.wanted if attempt == 0 else (0, 0)
            self.client_port = free_port(self.host, client)
            self.peer_port = free_port(self.host, peer, taken={self.client_port})
            self._spawn()
            try:
                self._wait_healthy(timeout)
                return
            except EtcdError as exc:
                self.stop()
                if "address already in use" not in str(exc) or attempt == PORT_RETRIES:
                    raise

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM, SIGKILL after ``grace`` seconds; its exit status (None if never started)."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def __enter__(self) -> EtcdProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inside ------------------------------------------------------------------------

    def argv(self) -> list[str]:
        peer = f"http://{self.host}:{self.peer_port}"
        return [
            self.binary,
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.url,
            "--advertise-client-urls", self.url,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"{self.name}={peer}",
            "--logger", "zap",
            # Views are folded from watches that start at the revision just read, so a
            # modest history is enough; compaction keeps a long-running farm's etcd small.
            "--auto-compaction-mode", "revision",
            "--auto-compaction-retention", "1000",
        ]  # fmt: skip

    def _spawn(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C is for the supervisor, not etcd
                preexec_fn=dies_with_this_process(),
            )

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise EtcdError(f"etcd exited {self._status()}: {self._log_tail()}")
            if self._healthy():
                return
            time.sleep(0.05)
        raise EtcdError(f"etcd not serving within {timeout:.0f} s: {self._log_tail()}")

    def _healthy(self) -> bool:
        conn = http.client.HTTPConnection(self.host, self.client_port, timeout=1)
        try:
            conn.request("GET", "/health")
            answer = json.loads(conn.getresponse().read() or b"{}")
        except (OSError, http.client.HTTPException, ValueError):
            return False
        finally:
            conn.close()
        return isinstance(answer, dict) and answer.get("health") == "true"

    def _status(self) -> str:
        code = None if self.process is None else self.process.returncode
        if code is not None and code < 0:
            return f"on {signal.Signals(-code).name}"
        return f"with status {code}"

    def _log_tail(self, lines: int = 3) -> str:
        """The last log lines, their messages only (etcd logs JSON), on one line."""
        with contextlib.suppress(OSError):
            tail = self.log.read_text(errors="replace").splitlines()[-lines:]
            return " | ".join(_message(line) for line in tail) or "(no log)"
        return "(no log)"


def _message(line: str) -> str:
    with contextlib.suppress(ValueError, AttributeError):
        record = json.loads(line)
        text = str(record.get("msg", line))
        error = record.get("error")
        return f"{text}: {error}" if error else text
    return line


def _binary() -> str:
    if Path(ETCD_BINARY).exists():
        return ETCD_BINARY
    return shutil.which("etcd") or ETCD_BINARY
