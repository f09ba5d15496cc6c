"""``sipfarm up``: the one-host farm in the foreground (DESIGN.md "Deployments").

The embedded default: one local etcd (:class:`~cluster.etcdproc.EtcdProcess`,
data in ``<data>/etcd``, log in ``<data>/etcd.log``) and N member processes
(``python -m sipfarm member``), all on the same SIP address: the members bind
it with ``SO_REUSEPORT``, so the kernel is the L4 balancer.  Each member has
its own cluster link and admin endpoint on free loopback ports, and the token
``m1`` … ``mN``.

The supervisor:

- holds ``<data>/farm.lock`` for as long as it runs (one farm per data directory),
  and keeps ``<data>/farm.json`` (:func:`read_farm`) up to date: the etcd address
  and each member's token, addresses and PID, for ``sipfarm status --data`` and
  ``sipfarm member not-ready TOKEN --data``.  A restart prefers the ports of the
  previous run, so the addresses stay the same when they can;
- writes every line a member logs to its own stderr, the member's token first;
- restarts a member that dies, after 1 s, then 2, 4 … up to 30 s while it keeps
  dying within a minute of its start (a few restarts a minute at most), and etcd
  likewise; a member that exits 2 at its first start (a bad option, an address it
  cannot bind) will not do better next time: the farm stops and ``up`` exits 2; a
  member started again keeps its cluster and admin ports, or gets new ones when
  another process took them meanwhile;
- on SIGINT or SIGTERM: SIGTERM to every member (a second signal: SIGKILL), SIGKILL
  to those still there after ``stop_grace`` seconds, then etcd stops; exit 0.

Children run in their own session (a terminal's Ctrl-C reaches the supervisor
alone, which stops the members before etcd) and get SIGTERM when the
supervisor ends, even by SIGKILL (:func:`~cluster.etcdproc.dies_with_this_process`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from cluster.etcdproc import (
    EtcdError,
    EtcdProcess,
    can_listen,
    dies_with_this_process,
    free_port,
)

from .transport.steering import Steering

logger = logging.getLogger(__name__)

__all__ = [
    "FARM_FILE",
    "FarmBusy",
    "FarmConfig",
    "address_text",
    "farm_running",
    "read_farm",
    "run",
]

FARM_FILE = "farm.json"
LOCK_FILE = "farm.lock"

#: What a member's exit status 2 means (sipfarm.cli EXIT_USAGE): restarting cannot help.
EXIT_USAGE = 2

#: Restart delays: the first after 1 s, doubling while a child keeps dying young.
FIRST_DELAY = 1.0
MAX_DELAY = 30.0
#: A child that ran this long before it died starts the delays over.
HEALTHY_RUN = 60.0

#: A member's log line longer than this is cut (asyncio's reader buffers a whole line).
MAX_LINE = 1 << 20


class FarmBusy(RuntimeError):
    """Another ``sipfarm up`` runs on this data directory."""


@dataclass(frozen=True, slots=True)
class FarmConfig:
    """What ``sipfarm up`` is started with, validated by the CLI."""

    sip: tuple[str, int]
    members: int
    data: Path
    advertise: tuple[str, int]
    debug: bool = False
    trusted: tuple[str, ...] = ()  # sources whose requests are not challenged
    sync: bool = True  # bindings fsynced before their 200 OK (member --no-sync)
    steering: bool = True  # packets steered to their member by the kernel (eBPF)
    inner: str = "127.0.0.1"  # where etcd, the cluster links and the admin endpoints listen
    stop_grace: float = 10.0
    python: str = field(default_factory=lambda: sys.executable)


# -- farm.json --------------------------------------------------------------------------


def read_farm(data: Path) -> dict[str, Any] | None:
    """What the last ``sipfarm up`` on ``data`` wrote: None when there is no such farm.

    ``{"etcd": "127.0.0.1:PORT", "etcd_peer": PORT, "etcd_pid": PID, "sip": "HOST:PORT",
    "advertise": "HOST:PORT", "supervisor": PID (null once stopped), "members": {TOKEN:
    {"cluster": "127.0.0.1:PORT", "http": "127.0.0.1:PORT", "pid": PID or null}}}``.
    """
    try:
        value = json.loads((data / FARM_FILE).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _write_farm(data: Path, farm: dict[str, Any]) -> None:
    """Replace farm.json whole (a reader never sees half of it)."""
    temp = data / f".{FARM_FILE}.{os.getpid()}"
    temp.write_text(json.dumps(farm, indent=2) + "\n")
    temp.replace(data / FARM_FILE)


def farm_running(data: Path) -> bool:
    """Whether a ``sipfarm up`` holds ``data``'s lock now (it is released when it ends)."""
    try:
        fd = os.open(data / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _lock(data: Path) -> int:
    fd = os.open(data / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise FarmBusy(f"{data} is in use by another 'sipfarm up'") from None
    return fd


def _port_of(address: object) -> int:
    """The port of a ``"host:port"`` from an earlier farm.json; 0 when unreadable."""
    if isinstance(address, str) and address.rpartition(":")[2].isdigit():
        return int(address.rpartition(":")[2])
    return 0


def address_text(address: tuple[str, int]) -> str:
    """``host:port``, the host in brackets when it is IPv6 (as the options take it)."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- the members ------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Member:
    """One member slot: its fixed addresses, and the process that serves it now."""

    token: str
    cluster: tuple[str, int]
    http: tuple[str, int]
    process: asyncio.subprocess.Process | None = None
    delay: float | None = None  # the last wait before a restart (None: none yet)
    starts: int = 0


def _steering(config: FarmConfig, tokens: list[str]) -> Steering | None:
    """The kernel steering of packets for these member slots (sipfarm/transport/steering.py),
    or None: turned off, or refused by the kernel (not root, no eBPF), then said once."""
    if not config.steering:
        return None
    try:
        steering = Steering.create()
        for slot, token in enumerate(tokens):
            steering.assign(token, slot)
    except OSError as exc:
        logger.warning("no kernel steering, packets are relayed to their member: %s", exc)
        return None
    return steering


class Farm:
    """The running farm: etcd (started by :func:`run`) and the member slots."""

    def __init__(self, config: FarmConfig, etcd: EtcdProcess, previous: dict[str, Any]) -> None:
        self.config = config
        self.etcd = etcd
        self._claimed = {etcd.client[1], etcd.peer_port}
        old = previous.get("members")
        old_members: dict[str, Any] = old if isinstance(old, dict) else {}
        self.members = [
            self._slot(f"m{i}", old_members.get(f"m{i}")) for i in range(1, config.members + 1)
        ]
        self.steering = _steering(config, [m.token for m in self.members])
        self.exit_status = 0
        self._stopping = asyncio.Event()
        self._signals = 0
        self._stderr: IO[bytes] = sys.stderr.buffer

    def _slot(self, token: str, old: object) -> _Member:
        prior = old if isinstance(old, dict) else {}
        inner = self.config.inner
        cluster = self._claim(_port_of(prior.get("cluster")))
        http = self._claim(_port_of(prior.get("http")))
        return _Member(token, (inner, cluster), (inner, http))

    def _claim(self, prefer: int = 0) -> int:
        """A free inner port that no other part of the farm has: ``prefer`` when it is free."""
        port = free_port(self.config.inner, prefer, taken=self._claimed)
        self._claimed.add(port)
        return port

    def _still_free(self, m: _Member, address: tuple[str, int]) -> tuple[str, int]:
        """``address`` of member ``m``, or a new one when another process took its port
        while ``m`` was down (the new address reaches etcd and farm.json with ``m``)."""
        host, port = address
        if can_listen(host, port):
            return address
        self._claimed.discard(port)
        new = self._claim()
        logger.warning("member %s: port %d was taken meanwhile, %d instead", m.token, port, new)
        return host, new

    # -- farm.json ---------------------------------------------------------------------

    def describe(self, running: bool = True) -> dict[str, Any]:
        cfg = self.config
        return {
            "etcd": address_text(self.etcd.client),
            "etcd_peer": self.etcd.peer_port,
            "etcd_pid": self.etcd.pid if running else None,
            "sip": address_text(cfg.sip),
            "advertise": address_text(cfg.advertise),
            "supervisor": os.getpid() if running else None,
            "members": {
                m.token: {
                    "cluster": address_text(m.cluster),
                    "http": address_text(m.http),
                    "pid": m.process.pid
                    if running and m.process is not None and m.process.returncode is None
                    else None,
                }
                for m in self.members
            },
        }

    def _publish(self) -> None:
        try:
            _write_farm(self.config.data, self.describe())
        except OSError as exc:
            logger.error("cannot write %s: %s", self.config.data / FARM_FILE, exc)

    # -- running -----------------------------------------------------------------------

    def argv(self, m: _Member) -> list[str]:
        """``sipfarm member`` for slot ``m``."""
        cfg = self.config
        argv = [
            cfg.python, "-m", "sipfarm", "member",
            "--sip", address_text(cfg.sip),
            "--data", str(cfg.data),
            "--etcd", address_text(self.etcd.client),
            "--cluster", address_text(m.cluster),
            "--http", address_text(m.http),
            "--token", m.token,
            "--advertise", address_text(cfg.advertise),
        ]  # fmt: skip
        for prefix in cfg.trusted:
            argv += ["--trusted", prefix]
        if not cfg.sync:
            argv.append("--no-sync")
        if self.steering is not None:
            argv += ["--steering", str(self.steering)]
        return [*argv, "--debug"] if cfg.debug else argv

    async def run(self) -> int:
        """Keep the members (and etcd) running until a signal; stop them; the exit status."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        keepers = [loop.create_task(self._keep(m)) for m in self.members]
        watchdog = loop.create_task(self._watch_etcd())
        cfg = self.config
        logger.info(
            "starting the farm: %d members on udp+tcp %s (advertised %s), etcd %s; "
            "'sipfarm status --data %s' shows it",
            len(self.members),
            address_text(cfg.sip),
            address_text(cfg.advertise),
            self.etcd.url,
            cfg.data,
        )
        try:
            await self._stopping.wait()
        finally:  # a signal, a member that cannot run, or this task cancelled
            self._stop(self.exit_status)
            watchdog.cancel()
            await self._stop_members(keepers)
            if self.steering is not None:
                self.steering.close()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        return self.exit_status

    def _on_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals == 1:
            logger.info("%s: stopping the farm", sig.name)
            self._stop()
            return
        logger.warning("%s again: SIGKILL to the members", sig.name)
        for m in self.members:
            _send(m.process, signal.SIGKILL)

    def _stop(self, status: int = 0) -> None:
        if not self._stopping.is_set():
            self.exit_status = status
            self._stopping.set()
        for m in self.members:
            _send(m.process, signal.SIGTERM)

    async def _stop_members(self, keepers: list[asyncio.Task[None]]) -> None:
        """Every member gets ``stop_grace`` seconds after its SIGTERM, then SIGKILL."""
        _, late = await asyncio.wait(keepers, timeout=self.config.stop_grace)
        for m in self.members:
            if _send(m.process, signal.SIGKILL):
                logger.warning(
                    "member %s still there after %.0f s: SIGKILL", m.token, self.config.stop_grace
                )
        if late:
            await asyncio.wait(late)

    async def _keep(self, m: _Member) -> None:
        """Run slot ``m``'s member; start it again when it dies, until the farm stops."""
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            started = loop.time()
            try:
                process, relay = await self._spawn(m)
            except OSError as exc:
                logger.error("member %s cannot be started: %s", m.token, exc)
                self._stop(1)
                return
            status = await process.wait()
            await asyncio.wait({relay}, timeout=1.0)  # its last lines, unless a child holds on
            self._publish()
            if self._stopping.is_set():
                logger.info("member %s stopped (%s)", m.token, _exit_text(status))
                return
            if status == EXIT_USAGE and m.starts == 1:
                logger.error("member %s cannot run (exit 2, see its line above)", m.token)
                self._stop(EXIT_USAGE)
                return
            m.delay = _restart_delay(m.delay, loop.time() - started)
            logger.error(
                "member %s died (%s): restart in %.0f s",
                m.token,
                _exit_text(status),
                m.delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), m.delay)

    async def _spawn(self, m: _Member) -> tuple[asyncio.subprocess.Process, asyncio.Task[None]]:
        if m.process is not None:  # a restart
            m.cluster = self._still_free(m, m.cluster)
            m.http = self._still_free(m, m.http)
        process = await asyncio.create_subprocess_exec(
            *self.argv(m),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            limit=MAX_LINE,
            start_new_session=True,
            preexec_fn=dies_with_this_process(),
            pass_fds=tuple(self.steering.fds()) if self.steering is not None else (),
        )
        m.process = process
        m.starts += 1
        if self._stopping.is_set():  # the farm stopped while this one was starting
            process.terminate()
        assert process.stdout is not None
        relay = asyncio.get_running_loop().create_task(self._relay(m.token, process.stdout))
        logger.info("member %s started (pid %d)", m.token, process.pid)
        self._publish()
        return process, relay

    async def _relay(self, token: str, lines: asyncio.StreamReader) -> None:
        """Each line the member logs, onto our stderr with its token first."""
        prefix = f"{token} | ".encode()
        while True:
            try:
                line = await lines.readline()
            except ValueError:  # longer than MAX_LINE: the reader dropped it
                line = b"(a line over 1 MiB left out)\n"
            if not line:
                return
            if not line.endswith(b"\n"):
                line += b"\n"
            with contextlib.suppress(OSError):
                self._stderr.write(prefix + line)
                self._stderr.flush()

    async def _watch_etcd(self) -> None:
        """Start etcd again (same data, the same ports when free) when it dies."""
        delay: float | None = None
        started = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            if self.etcd.running:
                continue
            delay = _restart_delay(delay, time.monotonic() - started)
            logger.error("etcd died: restart in %.0f s (members stop taking new work)", delay)
            await asyncio.sleep(delay)
            started = time.monotonic()
            self.etcd.wanted = self.etcd.client[1], self.etcd.peer_port
            try:  # blocks the loop for the few seconds etcd takes; nothing to serve meanwhile
                self.etcd.start()
            except EtcdError as exc:
                logger.error("etcd did not start again: %s", exc)
                continue
            if self.etcd.client[1] != self.etcd.wanted[0]:
                logger.error(
                    "etcd is back on another port (%s): the members cannot find it; restart "
                    "the farm",
                    self.etcd.url,
                )
            logger.info("etcd is back (pid %s)", self.etcd.pid)
            self._publish()


def _restart_delay(previous: float | None, ran: float) -> float:
    """The wait before starting again a child that ran ``ran`` seconds: 1 s after one that
    ran a minute, otherwise twice the previous wait (up to 30 s)."""
    if previous is None or ran >= HEALTHY_RUN:
        return FIRST_DELAY
    return min(previous * 2, MAX_DELAY)


def _send(process: asyncio.subprocess.Process | None, sig: signal.Signals) -> bool:
    """Signal ``process`` if it still runs; whether it did."""
    if process is None or process.returncode is not None:
        return False
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(sig)
        return True
    return False


def _exit_text(status: int) -> str:
    if status < 0:
        return f"killed by {signal.Signals(-status).name}"
    return f"exit {status}"


# -- the whole ---------------------------------------------------------------------------


def run(config: FarmConfig) -> int:
    """Run the farm in the foreground until SIGINT/SIGTERM; the exit status.

    Raises FarmBusy when another ``up`` holds the data directory, EtcdError when etcd
    does not start, OSError when the data directory cannot be made.
    """
    data = config.data
    data.mkdir(parents=True, exist_ok=True)
    lock = _lock(data)
    previous = read_farm(data) or {}
    peer = previous.get("etcd_peer")
    etcd = EtcdProcess(
        data / "etcd",
        host=config.inner,
        client_port=_port_of(previous.get("etcd")),
        peer_port=peer if isinstance(peer, int) else 0,
        log=data / "etcd.log",
    )
    # Until the loop's handlers take over, SIGTERM unwinds like Ctrl-C does, through the
    # finally below, so that etcd is stopped however early the signal comes.
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, _interrupt)
    farm: Farm | None = None
    try:
        etcd.start()
        logger.info("etcd serving on %s (pid %s, data %s)", etcd.url, etcd.pid, etcd.data_dir)
        farm = Farm(config, etcd, previous)
        return asyncio.run(farm.run())
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # the cleanup is not to be cut short
            signal.signal(sig, signal.SIG_IGN)
        status = etcd.stop()
        if status is not None:
            logger.info("etcd stopped")
        if farm is not None:
            with contextlib.suppress(OSError):
                _write_farm(data, farm.describe(running=False))
        os.close(lock)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
