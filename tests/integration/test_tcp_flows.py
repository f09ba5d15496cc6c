"""Requests to a contact registered over TCP reuse its connection (RFC 5626 §5.3, RFC 3261
§18): real sockets on loopback against a real member process.

bob registers over a TCP connection he keeps; a call to him from a UDP caller
arrives on that connection, his answer goes back to the caller, and once he has
closed the connection the next call gets 480 (the caller did not say
``Supported: outbound``).
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sipp import Member, TcpPeer, fresh_loopback, start_member, stop_process
from sippcalls import DOMAIN, make_data

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def member(tmp_path: Path) -> Iterator[Member]:
    data = make_data(tmp_path / "data", {"bob": "secret", "alice": "secret"})
    host = fresh_loopback()
    extra = ["--data", str(data), "--trusted", "127.0.0.0/8", "--http", f"{host}:{HTTP_PORT}"]
    started = start_member(tmp_path, host=host, extra=extra)
    try:
        yield started
    finally:
        status = stop_process(started.process)
    assert status == 0, f"member exited {status}:\n{started.stderr_text()}"


HTTP_PORT = 8080


def wait_for_no_tcp_connection(member: Member, timeout: float = 5.0) -> None:
    """Until the member's /status counts no TCP connection (it has seen bob's close)."""
    deadline = time.monotonic() + timeout
    while True:
        conn = http.client.HTTPConnection(member.host, HTTP_PORT, timeout=2)
        try:
            conn.request("GET", "/status")
            counters = json.loads(conn.getresponse().read())["counters"]
        finally:
            conn.close()
        if counters["tcp_connections"] == 0:
            return
        assert time.monotonic() < deadline, f"member still holds a TCP connection: {counters}"
        time.sleep(0.02)


def status_of(message: bytes) -> int:
    return int(message.split(b" ", 2)[1])


def udp_read(sock: socket.socket, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    data, _ = sock.recvfrom(65535)
    return data


def invite(member: Member, caller: socket.socket, call_id: str) -> bytes:
    host, port = caller.getsockname()
    return (
        f"INVITE sip:bob@{DOMAIN} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK-{call_id};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:alice@{DOMAIN}>;tag=a-{call_id}\r\n"
        f"To: <sip:bob@{DOMAIN}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:alice@{host}:{port}>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def answer(request: bytes, code: int, reason: str) -> bytes:
    """bob's response to what the member sent him: Via, From, To (+tag), Call-ID, CSeq."""
    head = request.split(b"\r\n\r\n", 1)[0].decode()
    keep = [
        line
        for line in head.split("\r\n")[1:]
        if re.match(r"(?i)(via|from|call-id|cseq|record-route)\s*:", line)
    ]
    to = next(line for line in head.split("\r\n") if re.match(r"(?i)to\s*:", line))
    return (
        f"SIP/2.0 {code} {reason}\r\n" + "\r\n".join([*keep, f"{to};tag=bob1"])
        + "\r\nContent-Length: 0\r\n\r\n"
    ).encode()  # fmt: skip


def test_a_call_reaches_a_tcp_contact_over_its_connection(member: Member) -> None:
    bob = TcpPeer(member.host, member.port)
    caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    caller.bind((member.host, 0))
    try:
        host, port = bob.sock.getsockname()
        bob.send(
            (
                f"REGISTER sip:{DOMAIN} SIP/2.0\r\n"
                f"Via: SIP/2.0/TCP {host}:{port};branch=z9hG4bK-reg1\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:bob@{DOMAIN}>;tag=r1\r\n"
                f"To: <sip:bob@{DOMAIN}>\r\n"
                "Call-ID: reg-bob\r\n"
                "CSeq: 1 REGISTER\r\n"
                f"Contact: <sip:bob@{host}:{port};transport=tcp>\r\n"
                "Expires: 600\r\n"
                "Content-Length: 0\r\n\r\n"
            ).encode()
        )
        registered = bob.read()
        assert registered is not None and status_of(registered) == 200, registered

        caller.sendto(invite(member, caller, "call-1"), (member.host, member.port))
        assert status_of(udp_read(caller)) == 100
        forwarded = bob.read()  # on the connection bob registered over
        assert forwarded is not None and forwarded.startswith(b"INVITE sip:bob@"), forwarded
        assert b"SIP/2.0/TCP" in forwarded.split(b"\r\n")[1]  # the member's own Via

        bob.send(answer(forwarded, 486, "Busy Here"))
        assert status_of(udp_read(caller)) == 486
        ack = bob.read()  # the member's ACK of the 486, hop by hop (§17.1.1.3)
        assert ack is not None and ack.startswith(b"ACK "), ack
    finally:
        bob.close()

    wait_for_no_tcp_connection(member)
    try:
        caller.sendto(invite(member, caller, "call-2"), (member.host, member.port))
        answers = [status_of(udp_read(caller))]
        while answers[-1] < 200:
            answers.append(status_of(udp_read(caller, timeout=10.0)))
        assert answers[-1] == 480, answers
    finally:
        caller.close()
