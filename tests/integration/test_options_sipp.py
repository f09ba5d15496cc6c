"""A member answers OPTIONS from SIPp with 200, over UDP and over TCP."""

from __future__ import annotations

import pytest
from sipp import Member, run_sipp

pytestmark = [pytest.mark.sipp, pytest.mark.timeout(60)]


@pytest.mark.parametrize("transport", ["u1", "t1"], ids=["udp", "tcp"])
def test_options_all_answered_200(member: Member, transport: str) -> None:
    stats = run_sipp(
        "options_uac", member.target, transport=transport, calls=200, rate=200, timeout=20
    )

    assert (stats.successful, stats.failed) == (200, 0), (
        f"{stats}\nmember stderr:\n{member.stderr_text()}"
    )
