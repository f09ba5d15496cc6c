"""A request the member fails on (a bug) gets 500 on UDP, not silence (STYLE §4)."""

from __future__ import annotations

import socket

import pytest

from sipfarm.actions import Drop, Send, Source
from sipfarm.sip.errors import SipError
from sipfarm.stateless import StatelessConfig, StatelessCore
from sipfarm.transport import TransportConfig
from sipfarm.transport.udp import UdpServer

pytestmark = pytest.mark.timeout(10)

OPTIONS = (
    b"OPTIONS sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-boom\r\n"
    b"Max-Forwards: 70\r\nTo: <sip:bob@example.com>\r\nFrom: <sip:a@example.com>;tag=1\r\n"
    b"Call-ID: boom\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
)


class Failing:
    """A handler with a bug in receive; refuse answers as the member's core does."""

    def __init__(self) -> None:
        self.stateless = StatelessCore(StatelessConfig(token="m1"))

    def receive(self, data: bytes, source: Source, now: float) -> list[Send] | Drop:
        raise RuntimeError("a bug")

    def refuse(self, data: bytes, error: SipError, source: Source) -> list[Send] | Drop:
        action = self.stateless.refuse(data, error, source)
        if isinstance(action, Drop):
            return action
        return [Send(action.data, "UDP", action.address)]  # type: ignore[union-attr]


def test_a_request_that_fails_gets_500() -> None:
    sent: list[Send] = []
    counters: dict[str, int] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        server = UdpServer(Failing(), TransportConfig(), counters, sock, sent.extend)
        server.datagram_received(OPTIONS, ("127.0.0.1", 5999))
    assert counters["udp_errors"] == 1
    assert len(sent) == 1 and sent[0].data.startswith(b"SIP/2.0 500 Server Internal Error\r\n")
    assert sent[0].address == ("127.0.0.1", 5999)
    assert b"Call-ID: boom\r\n" in sent[0].data
