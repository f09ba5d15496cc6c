"""A member process: the SIP core behind its asyncio edges (DESIGN.md "Layers").

A member is its :class:`~sipfarm.core.SipCore` behind UDP and TCP on one
address, with the account store of its data directory read through a
:class:`~mail.directory.Directory` and the registrar's bindings in memory.
Started with ``etcd`` (and ``cluster``), the member joins a farm: a
:class:`~sipfarm.farm.Farm` then stands between its sockets and its core
(router, relays, membership), and its bindings live on the shared storage with
the owner of their AOR (:class:`~sipfarm.farm.FarmLocation`).

Timers: one loop timer runs the core's timer heap every ``tick`` seconds
(10 ms), rather than one loop timer per transaction timer; bindings are
expired once a second, a bounded number at a time.  A 50 ms tick (Kamailio's
is 62.5 ms) saved a lightly loaded member some 8 % of its CPU at 200 calls/s
(bench_farm.py, 2 x 2 runs), but the CI run that had it lost one call of the
kill -9 farm test twice in a row, so it stays at 10 ms until that race (see
the session 7 note: a retransmitted INVITE reaching a SIPp UAS whose answers
went to the dead member) is understood.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import secrets
import signal
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from mail.aliases import aliases
from mail.api import AccountRecord
from mail.commit import GroupCommit
from mail.directory import Directory
from mail.mover import finish_pending
from mail.store import AccountStore

from .actions import Send
from .admin import AdminServer
from .core import CoreConfig, SipCore
from .farm import AccountBindings, CallFailed, Farm, FarmLocation, Unreachable
from .flows import Flows
from .provisioning import Answer, Provisioning, Subject
from .registrar import Location, MemoryLocation, StoredLocation
from .transport import TcpServer, TransportConfig, UdpServer, bind_udp
from .transport.ratelimit import RateLimitedLog
from .transport.steering import Enlisted, Steering

logger = logging.getLogger(__name__)

#: The farm-wide nonce secret lives beside the shared storage (DESIGN.md "Account store").
SECRET_FILE = "farm.secret"

#: getsockopt(SOL_SOCKET, SO_MEMINFO): the socket's memory, receive queue first (Linux).
SO_MEMINFO = getattr(socket, "SO_MEMINFO", 55)

#: A tick this late means the process was paused, not slowed down by work.
PAUSE = 1.0

#: Seconds between full passes of the cyclic garbage collector (see Member.start).
FULL_COLLECTION = 3600.0
#: The young generations' thresholds.  A collection of generation 1 walks what survived
#: GC_MIDDLE collections of generation 0 (live transactions, 32 s of them, bindings):
#: with 50,000 and 50 that stopped the loop 40-100 ms every few seconds at 300
#: requests/s, which made the p99 of bench_lookup.py (15-50 ms).  With 5,000 and 2 the
#: longest pause was 9 ms, p99 5 ms, and the collector's total time fell by half (a
#: young generation that fits the caches is walked faster).  /status counts the pauses.
GC_YOUNG = 5_000
GC_MIDDLE = 2


#: The longest a drained member waits for the dialogs through it before it says idle
#: (see Member.idle); its transactions it always waits for (their timers end them).
DRAIN_DIALOGS = 30.0
#: Seconds a provisioning write of one account waits for its owner (a domain's waits as
#: long as the controller lives: a foldering switch moves every account).
PROVISION_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class MemberConfig:
    """Everything a member is started with, validated once at the edge (the CLI)."""

    host: str
    port: int
    data: Path | None = None
    token: str = field(default_factory=lambda: secrets.token_hex(3))
    trusted: tuple[str, ...] = ()
    advertise: tuple[str, int] | None = None  # the address in Via / Record-Route
    digest_algorithms: tuple[str, ...] = ("MD5", "SHA-256")
    transport: TransportConfig = field(default_factory=TransportConfig)
    stats_interval: float = 60.0
    tick: float = 0.01  # the timer tick (module docstring)
    http: tuple[str, int] | None = None  # the admin HTTP endpoint (health, drain), if any
    # The farm (DESIGN.md "Cluster"): with ``etcd``, the member joins the farm whose
    # membership lives there and links to the other members at ``cluster``.
    etcd: tuple[str, int] | None = None
    cluster: tuple[str, int] | None = None  # the cluster link's address (required with etcd)
    roles: frozenset[str] = frozenset({"frontend", "backend"})
    # Bindings fsynced (group commit) before their 200 OK; off: they survive the
    # member's death (page cache), not the host's (the benchmarks' baseline).
    sync: bool = True
    # The one-host farm's kernel steering of packets (sipfarm/transport/steering.py):
    # the descriptors ``sipfarm up`` made and passed down, or None.
    steering: Steering | None = None
    # UDP receive queue fill that starts shedding new requests (a quarter of the 4 MiB
    # buffer is some 250 ms of work: about when callers start to retransmit, T1 = 500 ms)
    overload_on: float = 0.25
    overload_off: float = 0.05  # and the fill under which shedding stops
    overload_lag: float = 0.2  # smoothed event-loop lag (s) that starts shedding too


class _NoAccounts:
    """The directory of a member started without a data directory: serves no domain."""

    def has_domain(self, domain: str) -> bool:
        return False

    def account(self, user: str, domain: str) -> AccountRecord | None:
        return None

    def canonical(self, user: str, domain: str) -> str | None:
        return None


def farm_secret(data: Path | None) -> bytes:
    """The nonce secret every member of the farm shares: ``<data>/farm.secret``, made once."""
    if data is None:
        return secrets.token_bytes(32)
    path = data / SECRET_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    data.mkdir(parents=True, exist_ok=True)
    temp = data / f".{SECRET_FILE}.{secrets.token_hex(4)}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_bytes(32))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:  # link fails when another member made it first: then both use that one
        os.link(temp, path)
    except FileExistsError:
        pass
    finally:
        temp.unlink()
    return path.read_bytes()


def _own_addresses(host: str, port: int) -> tuple[str, ...]:
    """The ``host:port`` strings that name this member in a Request-URI or Route."""
    if host == "0.0.0.0":
        return (f"127.0.0.1:{port}",)
    if host == "::":
        return (f"[::1]:{port}", f"127.0.0.1:{port}")
    return (f"[{host}]:{port}" if ":" in host else f"{host}:{port}",)


def _farm_addresses(advertise: tuple[str, int]) -> frozenset[bytes]:
    """The sent-by values of the farm's own Via headers (the router's rule 1)."""
    host, port = advertise
    named = f"[{host}]" if ":" in host else host
    out = {f"{named}:{port}".lower().encode()}
    if port == 5060:
        out.add(named.lower().encode())
    return frozenset(out)


class GcPauses:
    """The cyclic collector's pauses, per generation: how many, their total and longest
    (milliseconds), for ``/status`` (each one stops the event loop: a p99 shows them)."""

    def __init__(self) -> None:
        self.counters: dict[str, int] = {}
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        ms = int((time.perf_counter() - self._started) * 1000)
        gen = f"gc_gen{info.get('generation', 0)}"
        c = self.counters
        c[f"{gen}_runs"] = c.get(f"{gen}_runs", 0) + 1
        c[f"{gen}_ms"] = c.get(f"{gen}_ms", 0) + ms
        if ms > c.get(f"{gen}_max_ms", 0):
            c[f"{gen}_max_ms"] = ms


class Member:
    """One member: binds, serves until stopped, reports its counters."""

    def __init__(self, config: MemberConfig):
        self.config = config
        store = AccountStore(config.data) if config.data is not None else None
        directory: Directory | _NoAccounts = (
            _NoAccounts()
            if store is None
            else Directory(store, aliases=functools.partial(aliases, store))
        )
        self.farm: Farm | None = None
        location: Location = MemoryLocation()
        flows = Flows(config.token)
        if config.etcd is not None:
            if store is None or config.cluster is None:
                raise ValueError("a farm member needs a data directory and a cluster address")
            storage = AccountBindings(store, flows, config.token, GroupCommit(enabled=config.sync))
            stored = StoredLocation(storage)
            location = FarmLocation(
                stored, owns=lambda aor: self.farm is None or self.farm.owns(aor)
            )
        self.core = SipCore(
            CoreConfig(
                token=config.token,
                advertise=config.advertise or (config.host, config.port),
                secret=farm_secret(config.data),
                addresses=_own_addresses(config.host, config.port),
                trusted=config.trusted,
                digest_algorithms=config.digest_algorithms,
            ),
            directory,
            location,
        )
        self.counters: dict[str, int] = {}
        self._udp: asyncio.DatagramTransport | None = None
        self._udp_server: UdpServer | None = None
        advertise = config.advertise or (config.host, config.port)
        if config.etcd is not None and config.cluster is not None:
            assert isinstance(location, FarmLocation)
            self.farm = Farm(
                config.token,
                self.core,
                flows,
                location,
                self._send,
                storage=storage,
                drain=self._drain_udp,
                cluster=config.cluster,
                etcd=config.etcd,
                roles=config.roles,
                farm_addresses=_farm_addresses(advertise),
                sip=(config.host, config.port),
                http=config.http,
            )
            self.dispatch = self.farm.dispatch
            self.farm.on_provision = self.provide_here
            self.farm.on_changed = self.accounts_changed
        else:
            self.dispatch = self._send
        self._handler = self.farm if self.farm is not None else self.core
        self._tcp = TcpServer(self._handler, config.transport, self.counters, self.dispatch)
        self._ticker: asyncio.TimerHandle | None = None
        self._next_expiry = 0.0
        self._next_full_collection = 0.0
        self._tick_due = 0.0
        self._lag = 0.0
        self._udp_sock: socket.socket | None = None
        self._mover: asyncio.Future[None] | None = None
        self._overload_log = RateLimitedLog(logger, interval=10.0, burst=4)
        self.token = config.token
        self._store = store
        self.provisioning = (
            Provisioning(store, config.data) if store is not None and config.data else None
        )
        self._admin = AdminServer(self) if config.http is not None else None
        self._drained_at: float | None = None  # when set_ready(False) came
        self._gc = GcPauses()

    # -- health and drain (sipfarm.admin) -----------------------------------------------

    @property
    def ready(self) -> bool:
        return self.core.ready

    @property
    def idle(self) -> bool:
        """Drained and done: no transaction at work, and no dialog through this member,
        or DRAIN_DIALOGS seconds since the drain began.

        A dialog needs no member (any member routes its in-dialog requests, loose
        routing), so it only delays the stop for the BYEs on their way through
        here; and the count errs high: a dialog whose BYE went through another
        member (this one out of reach for a moment) stays counted here until its
        lifetime ends, two hours.  So the wait for dialogs is bounded.
        """
        stats = self.core.stats()
        if stats["transactions_active"]:
            return False
        drained = self._drained_at
        return not stats["dialogs"] or (
            drained is not None and time.monotonic() - drained >= DRAIN_DIALOGS
        )

    def set_ready(self, ready: bool) -> None:
        """Not ready: health probes (HTTP and SIP OPTIONS) get 503, work under way goes on.

        In a farm the member also leaves the ring (state not-ready in etcd), so
        no new undirected work is placed on it.
        """
        self._drained_at = None if ready else (self._drained_at or time.monotonic())
        if ready != self.core.ready:
            logger.warning("member %s is %s", self.config.token, "ready" if ready else "not ready")
        if self.farm is not None:
            self.farm.set_ready(ready)
        else:
            self.core.ready = ready

    # -- provisioning (sipfarm.provisioning): each write through its subject's writer ----

    async def provide(self, method: str, path: str, body: bytes) -> Answer:
        """Answer an authorized provisioning request received here.

        A write goes to the member that writes its subject (DESIGN.md "Account
        store"): an account's ring owner, so that one member opens and writes an
        account at a time (its bindings and its settings alike); a domain's
        controller, so that a foldering switch runs once.  When that member cannot
        be asked (its link is down or silent: it may be dying), the answer is 503
        with Retry-After, never a write here beside a writer that may still live.
        """
        assert self.provisioning is not None
        subject = Provisioning.subject(method, path, body)
        farm = self.farm
        writer = farm.writer(*subject) if farm is not None and subject is not None else None
        if farm is None or subject is None or writer is None:
            return await self._provide_here(method, path, body, subject)
        timeout = PROVISION_TIMEOUT if subject.user is not None else None
        try:
            status, answer = await farm.ask(
                writer, "provision", {"method": method, "path": path, "body": body}, timeout
            )
        except (Unreachable, CallFailed, TimeoutError) as exc:
            what = f"{subject.user}@{subject.domain}" if subject.user else subject.domain
            logger.warning("provisioning %s %s: its writer %s: %s", method, path, writer, exc)
            return 503, {"error": f"{writer}, the writer of {what}, did not answer ({exc}): retry"}
        return int(status), answer

    async def provide_here(self, method: str, path: str, body: bytes) -> Answer:
        """Do a provisioning request another member sent here (we write its subject)."""
        subject = Provisioning.subject(method, path, body)
        return await self._provide_here(method, path, body, subject)

    async def _provide_here(
        self, method: str, path: str, body: bytes, subject: Subject | None
    ) -> Answer:
        """Do a provisioning request on this member (the writer of its subject, or a read)."""
        assert self.provisioning is not None
        if subject is not None and self.farm is not None:
            if self.farm.writer(*subject) is not None:  # the view moved it meanwhile
                return 503, {"error": "its writer changed with the view: retry"}
            if subject.user is not None and self.farm.fenced():
                return 503, {"error": "the view is changing (its previous owner may write): retry"}
        loop = asyncio.get_running_loop()
        status, answer = await loop.run_in_executor(
            None, self.provisioning.handle, method, path, body
        )
        if subject is not None and status < 300:
            self.accounts_changed(*subject)  # served at once here, and at the others:
            if self.farm is not None:
                self.farm.changed(*subject)
        return status, answer

    def accounts_changed(self, domain: str, user: str | None = None) -> None:
        """Provisioning changed an account (or a domain, ``user`` None): read it afresh."""
        directory = self.core.directory
        if not isinstance(directory, Directory):
            return
        if user is None:
            directory.clear()
            return
        directory.forget(user, domain)
        if self.farm is not None:  # its bindings too, when it was removed
            self.farm.location.stored.forget(f"sip:{user}@{domain}")

    def view(self) -> dict[str, object] | None:
        """The farm as this member sees it (None for a member on its own)."""
        return self.farm.status() if self.farm is not None else None

    # -- sending: the one place where the core's Send values meet sockets ---------------

    def _send(self, sends: list[Send]) -> None:
        udp = self._udp_server
        for send in sends:
            if send.transport == "UDP" and udp is not None:
                udp.send(send.data, send.address)
            elif send.transport == "TCP":
                self._tcp.send(send.data, send.address, functools.partial(self._failed, send))
            else:
                self._failed(send)

    def _failed(self, send: Send) -> None:
        self.counters["send_failed"] = self.counters.get("send_failed", 0) + 1
        if send.ref is not None:
            out = self.core.transport_failed(send.ref, time.time())
            if out:
                self.dispatch(out)

    def _drain_udp(self) -> int:
        """Discard every datagram waiting in the UDP socket; how many there were."""
        sock = self._udp_sock
        count = 0
        while sock is not None:
            try:
                sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue  # an ICMP error queued on the socket
            count += 1
        self.counters["stale_discarded"] = self.counters.get("stale_discarded", 0) + count
        return count

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        if self._tick_due:
            self._watch_load(started - self._tick_due)
        self._tick_due = started + self.config.tick
        self._ticker = loop.call_at(self._tick_due, self._tick)
        now = time.time()
        try:
            if self.farm is not None:
                self.farm.tick()
            deadline = self.core.next_deadline()
            if deadline is not None and deadline <= now:
                out = self.core.advance(now)
                if out:
                    self.dispatch(out)
            if now >= self._next_expiry:
                self._next_expiry = now + 1.0
                self.core.expire(now)
                if time.monotonic() >= self._next_full_collection:
                    self._full_collection()
        except Exception:
            logger.exception("timer processing failed")

    def _watch_load(self, lag: float) -> None:
        """Overload: datagrams waiting in the socket, or an event loop running late.

        The UDP receive queue is read with SO_MEMINFO (the kernel's count of bytes
        waiting); the loop's lateness is how long after it was due this tick ran.  When
        the queue holds more than ``overload_on`` of its buffer, or the smoothed lag is
        above ``overload_lag``, the core sheds new requests (503); it stops below
        ``overload_off`` of the buffer and a tenth of that lag.
        """
        if lag > PAUSE:
            return  # the process was stopped (SIGSTOP, a VM pause), not overloaded
        self._lag = 0.8 * self._lag + 0.2 * lag
        fill = 0.0
        if self._udp_sock is not None:
            try:
                info = self._udp_sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 36)
                rmem, rcvbuf = struct.unpack_from("2I", info)
                fill = rmem / rcvbuf if rcvbuf else 0.0
            except OSError:  # not Linux, or an old kernel: the lag alone
                self._udp_sock = None
        cfg = self.config
        core = self.core
        if not core.overloaded and (fill > cfg.overload_on or self._lag > cfg.overload_lag):
            core.overloaded = True
            self._overload_log.warning(
                "overloaded (receive queue %.0f%% full, loop %.0f ms late): new requests get 503",
                fill * 100,
                self._lag * 1e3,
            )
        elif core.overloaded and fill < cfg.overload_off and self._lag < cfg.overload_lag / 10:
            core.overloaded = False
            self._overload_log.warning("overload over: serving new requests again")

    def _full_collection(self) -> None:
        started = time.monotonic()
        found = gc.collect()
        self._next_full_collection = time.monotonic() + FULL_COLLECTION
        logger.info(
            "full collection: %d unreachable objects in %.3f s", found, time.monotonic() - started
        )

    # -- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Bind UDP and TCP on the configured address; raises OSError when it cannot."""
        loop = asyncio.get_running_loop()
        cfg = self.config
        # TCP first: a member that answers on UDP is ready on both (probes use UDP).
        await self._tcp.start(cfg.host, cfg.port)
        try:
            sock = bind_udp(cfg.host, cfg.port, cfg.transport)
        except BaseException:
            await self._tcp.stop()
            raise
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: UdpServer(self._handler, cfg.transport, self.counters, sock, self.dispatch),
                sock=sock,
            )
        except BaseException:
            sock.close()
            await self._tcp.stop()
            raise
        self._udp = transport
        self._udp_server = protocol
        self._udp_sock = sock
        if cfg.steering is not None and self.farm is not None:
            try:
                self.farm.steered = Enlisted(cfg.steering, cfg.token, sock)
                logger.info(
                    "packets steered here by the kernel (eBPF, slot %d)",
                    self.farm.steered.slot,
                )
            except OSError as exc:  # SteeringError among them
                logger.warning("no kernel steering (packets are relayed): %s", exc)
        try:
            if self._admin is not None and cfg.http is not None:
                await self._admin.start(*cfg.http)
            if self.farm is not None:
                await self.farm.start()
        except BaseException:
            transport.close()
            await self._tcp.stop()
            if self._admin is not None:
                await self._admin.stop()
            raise
        # Memory: the cores build no reference cycles (tests/unit/proxy/test_proxy_memory.py),
        # so reference counting frees a call's objects when its last timer has fired.  The
        # cyclic collector's full passes walk every live object (a second and more with
        # 100k live transactions), so they are kept out of the way: objects made at start
        # are frozen, young generations are collected as usual (they catch a cycle made
        # by a library), and the full pass runs once an hour (FULL_COLLECTION).
        if self._store is not None:  # a foldering switch a crash left half done
            self._mover = loop.run_in_executor(None, self._finish_moves, self._store)
        gc.freeze()
        gc.set_threshold(GC_YOUNG, GC_MIDDLE, 1_000_000_000)
        if self._gc not in gc.callbacks:
            gc.callbacks.append(self._gc)
        self._next_full_collection = time.monotonic() + FULL_COLLECTION
        self._tick()
        logger.info("member %s listening on udp+tcp %s:%d", cfg.token, cfg.host, cfg.port)

    @staticmethod
    def _finish_moves(store: AccountStore) -> None:
        try:
            for report in finish_pending(store):
                logger.warning("finished a pending foldering switch: %s", report)
        except Exception:
            logger.exception("the pending foldering switch could not be finished")

    async def stop(self) -> None:
        if self._gc in gc.callbacks:
            gc.callbacks.remove(self._gc)
        if self.farm is not None:  # gone from the view first: nothing new is sent here
            await self.farm.stop()
        if self._ticker is not None:
            self._ticker.cancel()
        if self._admin is not None:
            await self._admin.stop()
        if self._udp is not None:
            self._udp.close()
        await self._tcp.stop()
        logger.info("member %s stopped; counters %s", self.config.token, self.stats())

    def stats(self) -> dict[str, int]:
        out = self.core.stats()
        out.update(self.counters)
        out["tcp_connections"] = len(self._tcp.connections)
        out.update(self._gc.counters)
        if self.farm is not None:
            out.update(self.farm.counters)
            out.update(self.farm.links.counters)
            out.update({f"commit_{k}": v for k, v in self.farm.commit.counters.items()})
            out["flows_held_elsewhere"] = len(self.farm.flows)
            out["received"] = self.farm.received
        return out

    async def run(self) -> None:
        """Serve until SIGINT or SIGTERM."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        try:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), self.config.stats_interval)
                except TimeoutError:
                    logger.info("member %s counters %s", self.config.token, self.stats())
        finally:
            await self.stop()
