"""A member process: the cores behind their asyncio edges (DESIGN.md "Layers").

For now a member is its stateless core behind UDP and TCP on one address; the
farm router, transactions, registrar and proxy join it in later issues.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
from dataclasses import dataclass, field
from pathlib import Path

from .stateless import StatelessConfig, StatelessCore
from .transport import TcpServer, TransportConfig, UdpServer, bind_udp

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MemberConfig:
    """Everything a member is started with, validated once at the edge (the CLI)."""

    host: str
    port: int
    data: Path | None = None
    token: str = field(default_factory=lambda: secrets.token_hex(3))
    transport: TransportConfig = field(default_factory=TransportConfig)
    stats_interval: float = 60.0


class Member:
    """One member: binds, serves until stopped, reports its counters."""

    def __init__(self, config: MemberConfig):
        self.config = config
        self.core = StatelessCore(StatelessConfig(token=config.token))
        self.counters: dict[str, int] = {}
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp = TcpServer(self.core, config.transport, self.counters)

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
            transport, _ = await loop.create_datagram_endpoint(
                lambda: UdpServer(self.core, cfg.transport, self.counters, sock), sock=sock
            )
        except BaseException:
            sock.close()
            await self._tcp.stop()
            raise
        self._udp = transport
        logger.info("member %s listening on udp+tcp %s:%d", cfg.token, cfg.host, cfg.port)

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        await self._tcp.stop()
        logger.info("member %s stopped; counters %s", self.config.token, self.stats())

    def stats(self) -> dict[str, int]:
        out = dict(self.core.counters)
        out.update(self.counters)
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
