"""Registration with digest authentication, SIPp against a real member (RFC 3261 §10, §22).

SIPp 3.6.1 answers only MD5 challenges (the member offers MD5 first) and puts
``sip:<remote ip>:<port>`` in the digest uri unless told otherwise: every run gives
``-auth_uri example.com``, the REGISTER's Request-URI.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sipp import Member, start_member, stop_process
from sippcalls import DOMAIN, Sipp, make_data, write_csv

pytestmark = [pytest.mark.sipp, pytest.mark.timeout(90)]

ACCOUNTS = {f"user{i}": f"secret-{i}" for i in range(5)}


@pytest.fixture
def registrar(tmp_path: Path) -> Iterator[Member]:
    """A member with ACCOUNTS at example.com, trusting no one."""
    data = make_data(tmp_path / "data", ACCOUNTS)
    started = start_member(tmp_path, extra=["--data", str(data)])
    try:
        yield started
    finally:
        status = stop_process(started.process)
    assert status == 0, f"member exited {status} after SIGTERM:\n{started.stderr_text()}"


def register(member: Member, workdir: Path, scenario: str, rows: list[list[str]]) -> Sipp:
    csv_path = write_csv(workdir.with_suffix(".csv"), rows)
    return Sipp(
        workdir, scenario, member.host, target=member.target, calls=len(rows), rate=20,
        extra=["-inf", str(csv_path), "-auth_uri", DOMAIN],
    )  # fmt: skip


def contact(user: str, member: Member) -> str:
    return f"{user}@{member.host}:5999"


def test_every_account_registers_after_a_challenge(registrar: Member, tmp_path: Path) -> None:
    rows = [
        [user, DOMAIN, password, contact(user, registrar)] for user, password in ACCOUNTS.items()
    ]
    sipp = register(registrar, tmp_path / "sipp", "register_auth_uac", rows * 2)

    stats = sipp.finish()

    assert (stats.successful, stats.failed) == (2 * len(ACCOUNTS), 0), (
        f"{stats}\n{sipp.messages()[-4000:]}\nmember stderr:\n{registrar.stderr_text()}"
    )


def test_wrong_password_is_refused_with_403(registrar: Member, tmp_path: Path) -> None:
    rows = [["user1", DOMAIN, "not-the-password", contact("user1", registrar)]]
    sipp = register(registrar, tmp_path / "sipp", "register_auth_fail", rows)

    stats = sipp.finish()

    assert (stats.successful, stats.failed) == (1, 0), f"{stats}\n{sipp.messages()[-4000:]}"
    assert "SIP/2.0 403" in sipp.messages()


def test_unknown_account_is_refused_with_404(registrar: Member, tmp_path: Path) -> None:
    rows = [["nobody", DOMAIN, "whatever", contact("nobody", registrar)]]
    sipp = register(registrar, tmp_path / "sipp", "register_unknown", rows)

    stats = sipp.finish()

    assert (stats.successful, stats.failed) == (1, 0), f"{stats}\n{sipp.messages()[-4000:]}"
    assert "SIP/2.0 404" in sipp.messages()
