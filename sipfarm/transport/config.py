"""Transport limits: each one explicit, with the answer it gets when it is passed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TransportConfig:
    """Limits of the UDP and TCP edges (STYLE.md §4).

    - ``max_message_size``: a datagram or framed message larger than this gets
      513 Message Too Large when it can be answered, else it is dropped; a TCP
      connection that announces one is answered and closed.
    - ``max_header_size``: a stream header block without its blank line by then: 513, close.
    - ``max_connections_per_source``: further TCP connections from that address
      are closed on accept (counted).
    - ``idle_timeout``: seconds a TCP connection may stay silent before it is closed.
    - ``garbage_budget``: broken messages a TCP connection may send (each answered
      400 when it can be) before it is closed.
    - ``connect_timeout``: seconds an outgoing TCP connect may take before the
      request it carries fails with a transport error (RFC 3261 §17.1.4).
    """

    max_message_size: int = 65535
    max_header_size: int = 16384
    max_connections_per_source: int = 64
    idle_timeout: float = 300.0
    garbage_budget: int = 8
    receive_buffer: int = 4 * 1024 * 1024
    connect_timeout: float = 5.0
