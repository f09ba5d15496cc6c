"""``sipfarm member`` as an operator meets it: usage errors, bind errors, signals, --debug."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from member_proc import wait_for_tcp
from sipp import (
    SIPFARM,
    Member,
    free_port,
    fresh_loopback,
    options_probe,
    port_is_free,
    start_member,
    stop_process,
)

pytestmark = pytest.mark.timeout(60)

#: How long a process gets to exit, or a log line to appear.
WAIT_S = 10.0


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SIPFARM), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )


def stderr_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return result.stderr.splitlines()


@pytest.fixture
def started() -> Iterator[list[Member]]:
    """Members a test starts go in this list; each is stopped by PID afterwards."""
    members: list[Member] = []
    try:
        yield members
    finally:
        for m in members:
            stop_process(m.process)


# ---------------------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    "args",
    [
        ["member", "--sip", "127.0.0.1:5060", "--bogus"],
        ["member", "--bogus"],
        ["member"],
        ["member", "--sip"],
        ["member", "--sip", "127.0.0.1:99999"],
        ["member", "--sip", "127.0.0.1:0"],
        ["member", "--sip", "127.0.0.1:port"],
        ["member", "--sip", "localhost:5060"],
        ["member", "--sip", "999.0.0.1:5060"],
        [],
        ["frobnicate"],
    ],
    ids=["unknown-option", "unknown-option-no-sip", "no-sip", "sip-without-value",
         "port-99999", "port-0", "port-not-a-number", "host-not-an-ip", "bad-ipv4",
         "no-command", "unknown-command"],
)  # fmt: skip
def test_bad_invocation_exits_2_with_one_line(args: list[str]) -> None:
    result = run_cli(*args)

    assert result.returncode == 2, result
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("sipfarm: "), lines
    assert result.stdout == ""


def test_port_out_of_range_names_the_port() -> None:
    result = run_cli("member", "--sip", "127.0.0.1:99999")

    assert result.returncode == 2
    assert len(stderr_lines(result)) == 1, result.stderr
    assert "99999" in result.stderr


# ----------------------------------------------------------------------------- bind errors


@pytest.mark.parametrize("kind", ["tcp", "udp"])
def test_address_in_use_exits_2_with_one_clear_line(kind: str) -> None:
    """An address held by a socket without SO_REUSEPORT cannot be shared: exit 2, one line."""
    host = fresh_loopback()
    port = free_port(host)
    holder = socket.socket(
        socket.AF_INET, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    )
    process = None
    try:
        holder.bind((host, port))
        if kind == "tcp":
            holder.listen()
        process = subprocess.Popen(
            [str(SIPFARM), "member", "--sip", f"{host}:{port}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            out, err = process.communicate(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            stop_process(process)
            raise AssertionError(f"member still running on {host}:{port} held by {kind}") from None
    finally:
        holder.close()
        if process is not None:
            stop_process(process)

    stderr = err.decode(errors="replace")
    assert process.returncode == 2, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert f"{host}:{port}" in lines[0]
    assert "in use" in lines[0].lower()
    assert out == b""


# --------------------------------------------------------------------------------- signals


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_the_member_with_exit_0(
    tmp_path: Path, started: list[Member], sig: signal.Signals
) -> None:
    member = start_member(tmp_path)
    started.append(member)

    os.kill(member.pid, sig)
    try:
        status = member.process.wait(WAIT_S)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running {WAIT_S} s after {sig.name}") from None

    assert status == 0, member.stderr_text()
    assert "Traceback" not in member.stderr_text(), member.stderr_text()
    with pytest.raises(ProcessLookupError):  # reaped, and no child left under its PID
        os.kill(member.pid, 0)
    assert options_probe(member.host, member.port) is None
    assert port_is_free(member.host, member.port)


# ----------------------------------------------------------------------------------- debug


def wait_for_lines(member: Member, *needles: str) -> list[str]:
    """The stderr lines that contain every one of ``needles``, once there is one."""
    deadline = time.monotonic() + WAIT_S
    while True:
        lines = [
            line for line in member.stderr_text().splitlines() if all(n in line for n in needles)
        ]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)  # poll interval while the member writes its log


def send_options(member: Member) -> tuple[str, int]:
    """One OPTIONS over UDP from a fresh port, answered 200; returns its Call-ID and port."""
    call_id = secrets.token_hex(8)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((member.host, 0))
        port = sock.getsockname()[1]
        sock.sendto(
            (
                f"OPTIONS sip:{member.host}:{member.port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {member.host}:{port};branch=z9hG4bK{call_id};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:debug@{member.host}>;tag={call_id[:6]}\r\n"
                f"To: <sip:{member.host}:{member.port}>\r\n"
                f"Call-ID: {call_id}\r\n"
                "CSeq: 1 OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n"
            ).encode(),
            (member.host, member.port),
        )
        deadline = time.monotonic() + WAIT_S
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data = sock.recv(65535)
            except TimeoutError:
                break
            if call_id.encode() in data:
                assert data.startswith(b"SIP/2.0 200 "), data
                return call_id, port
    raise AssertionError(f"no answer to OPTIONS {call_id}:\n{member.stderr_text()}")


def send_options_tcp(member: Member) -> tuple[str, int]:
    """One OPTIONS over a TCP connection, answered 200; returns its Call-ID and local port."""
    call_id = secrets.token_hex(8)
    with socket.create_connection(
        (member.host, member.port), timeout=WAIT_S, source_address=(member.host, 0)
    ) as sock:
        port = sock.getsockname()[1]
        sock.sendall(
            (
                f"OPTIONS sip:{member.host}:{member.port};transport=tcp SIP/2.0\r\n"
                f"Via: SIP/2.0/TCP {member.host}:{port};branch=z9hG4bK{call_id}\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:debug@{member.host}>;tag={call_id[:6]}\r\n"
                f"To: <sip:{member.host}:{member.port}>\r\n"
                f"Call-ID: {call_id}\r\n"
                "CSeq: 1 OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n"
            ).encode()
        )
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65535)
            assert chunk, f"closed without an answer:\n{member.stderr_text()}"
            data += chunk
    assert data.startswith(b"SIP/2.0 200 "), data
    assert call_id.encode() in data, data
    return call_id, port


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_debug_logs_received_and_sent_packets(
    tmp_path: Path, started: list[Member], transport: str
) -> None:
    """STYLE.md §6: with --debug, a ``<`` line for what came in and a ``>`` line for what
    went out, each naming the transport and the peer."""
    member = start_member(tmp_path, extra=["--debug"])
    started.append(member)
    wait_for_tcp(member)

    call_id, port = (send_options if transport == "udp" else send_options_tcp)(member)
    peer = f"{member.host}:{port}"
    received = wait_for_lines(member, f" < {transport} ", peer, call_id)
    sent = wait_for_lines(member, f" > {transport} ", peer, call_id)

    assert received, member.stderr_text()
    assert sent, member.stderr_text()
    assert "OPTIONS sip:" in received[0]
    assert "SIP/2.0 200 OK" in sent[0]


def test_without_debug_no_packet_lines(tmp_path: Path, started: list[Member]) -> None:
    member = start_member(tmp_path)
    started.append(member)

    call_id, _ = send_options(member)

    # Logging is synchronous and comes before the answer is sent: by now it is written.
    log = member.stderr_text()
    assert "listening" in log  # the log is captured at all
    assert call_id not in log
    assert " < " not in log
    assert " > " not in log
