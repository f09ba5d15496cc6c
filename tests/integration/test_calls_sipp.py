"""Calls through a member's proxy, SIPp UAC -> member -> SIPp UAS (RFC 3261 §16).

The callee (a SIPp UAS) registers its address first, from that address; the caller
calls ``sip:bob@example.com``.  The member trusts 127.0.0.0/8 (``--trusted``), so
nothing is challenged, except in the one test that runs a member trusting no one.
SIPp 3.6.1's digest uri is set with ``-auth_uri`` (see test_register_sipp.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sipp import Member, SippStats, free_port, start_member, stop_process
from sippcalls import DOMAIN, Sipp, make_data, write_csv

pytestmark = [pytest.mark.sipp, pytest.mark.timeout(90)]

ACCOUNTS = {"alice": "alice-secret", "bob": "bob-secret"}
CALLS = 5


def _member(tmp_path: Path, *, trusted: bool) -> Iterator[Member]:
    data = make_data(tmp_path / "data", ACCOUNTS)
    extra = ["--data", str(data), *(["--trusted", "127.0.0.0/8"] if trusted else [])]
    started = start_member(tmp_path, extra=extra)
    try:
        yield started
    finally:
        status = stop_process(started.process)
    assert status == 0, f"member exited {status} after SIGTERM:\n{started.stderr_text()}"


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Member]:
    """A member with alice and bob at example.com, trusting 127.0.0.0/8."""
    yield from _member(tmp_path, trusted=True)


@pytest.fixture
def untrusting_proxy(tmp_path: Path) -> Iterator[Member]:
    """A member with alice and bob at example.com, trusting no one."""
    yield from _member(tmp_path, trusted=False)


def call(
    member: Member,
    workdir: Path,
    uac: str,
    uas: str,
    *,
    calls: int = CALLS,
    hold_ms: int = 0,
    caller_transport: str = "u1",
) -> tuple[SippStats, SippStats, str, str]:
    """Register bob at a SIPp UAS running ``uas``, then place ``calls`` with ``uac`` to him.

    Returns the UAC's and the UAS's statistics, every message the UAC sent and
    received, and the tail of both sides' messages and of the member's log (for
    assertion messages).
    """
    workdir.mkdir()
    port = free_port(member.host)
    callee = write_csv(workdir / "callee.csv",
                       [["bob", DOMAIN, ACCOUNTS["bob"], f"bob@{member.host}:{port}"]])  # fmt: skip
    registration = Sipp(
        workdir / "register", "register_contact", member.host, target=member.target,
        local_port=port, extra=["-inf", str(callee), "-auth_uri", DOMAIN],
    )  # fmt: skip
    registered = registration.finish()
    assert registered.successful == 1, (
        f"bob did not register: {registered}\n{registration.messages()[-3000:]}"
    )
    callee_side = Sipp(workdir / "uas", uas, member.host, local_port=port, calls=calls)
    callee_side.wait_bound()
    caller = write_csv(workdir / "calls.csv", [["alice", DOMAIN, ACCOUNTS["alice"], "bob"]])
    caller_side = Sipp(
        workdir / "uac", uac, member.host, target=member.target, calls=calls, rate=10,
        extra=["-inf", str(caller), "-d", str(hold_ms), "-auth_uri", f"bob@{DOMAIN}",
               "-t", caller_transport],
    )  # fmt: skip
    uac_stats = caller_side.finish()
    uas_stats = callee_side.finish()
    context = (
        f"=== UAC ===\n{caller_side.messages()[-3000:]}\n"
        f"=== UAS ===\n{callee_side.messages()[-3000:]}\n"
        f"=== member ===\n{member.stderr_text()[-2000:]}"
    )
    return uac_stats, uas_stats, caller_side.messages(), context


def test_calls_complete_with_bye(proxy: Member, tmp_path: Path) -> None:
    uac, uas, uac_messages, context = call(
        proxy, tmp_path / "calls", "call_uac", "call_uas", hold_ms=200
    )

    assert (uac.successful, uac.failed) == (CALLS, 0), f"{uac}\n{context}"
    assert (uas.successful, uas.failed) == (CALLS, 0), f"{uas}\n{context}"
    assert uac_messages.count("BYE sip:") >= CALLS


def test_cancel_after_ringing_gives_487(proxy: Member, tmp_path: Path) -> None:
    uac, uas, uac_messages, context = call(
        proxy, tmp_path / "calls", "call_uac_cancel", "call_uas_noanswer", hold_ms=0
    )

    assert (uac.successful, uac.failed) == (CALLS, 0), f"{uac}\n{context}"
    assert (uas.successful, uas.failed) == (CALLS, 0), f"{uas}\n{context}"
    assert "SIP/2.0 487" in uac_messages


def test_no_answer_caller_cancels(proxy: Member, tmp_path: Path) -> None:
    """The callee rings and never answers; the caller gives up after a second."""
    uac, uas, uac_messages, context = call(
        proxy, tmp_path / "calls", "call_uac_cancel", "call_uas_noanswer", calls=2, hold_ms=1000
    )

    assert (uac.successful, uac.failed) == (2, 0), f"{uac}\n{context}"
    assert (uas.successful, uas.failed) == (2, 0), f"{uas}\n{context}"
    assert uac_messages.count("CANCEL sip:") >= 2
    assert "SIP/2.0 487" in uac_messages


def test_busy_callee_gives_486(proxy: Member, tmp_path: Path) -> None:
    uac, uas, uac_messages, context = call(
        proxy, tmp_path / "calls", "call_uac_busy", "call_uas_busy"
    )

    assert (uac.successful, uac.failed) == (CALLS, 0), f"{uac}\n{context}"
    assert (uas.successful, uas.failed) == (CALLS, 0), f"{uas}\n{context}"
    assert "SIP/2.0 486" in uac_messages


def test_untrusted_caller_authenticates_after_407(untrusting_proxy: Member, tmp_path: Path) -> None:
    uac, uas, uac_messages, context = call(
        untrusting_proxy, tmp_path / "calls", "call_uac_auth", "call_uas", calls=2, hold_ms=200
    )

    assert (uac.successful, uac.failed) == (2, 0), f"{uac}\n{context}"
    assert (uas.successful, uas.failed) == (2, 0), f"{uas}\n{context}"
    assert "SIP/2.0 407" in uac_messages


def test_caller_over_tcp_callee_over_udp(proxy: Member, tmp_path: Path) -> None:
    """The caller's requests come over TCP and are answered on its connection; the
    member Record-Routes twice (one URI per transport) and the in-dialog ACK and BYE,
    which carry both, go on over UDP (RFC 3261 §16.6 step 4, §18.2.2)."""
    uac, uas, uac_messages, context = call(
        proxy, tmp_path / "calls", "call_uac", "call_uas", hold_ms=200, caller_transport="t1"
    )

    assert (uac.successful, uac.failed) == (CALLS, 0), f"{uac}\n{context}"
    assert (uas.successful, uas.failed) == (CALLS, 0), f"{uas}\n{context}"
    assert ";transport=tcp;lr;member=" in uac_messages, context
