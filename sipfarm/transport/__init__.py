"""The asyncio edge: UDP and TCP sockets that feed bytes to the cores (RFC 3261 §18)."""

from .config import TransportConfig
from .tcp import TcpServer
from .udp import UdpServer, bind_udp

__all__ = ["TcpServer", "TransportConfig", "UdpServer", "bind_udp"]
