"""Fixtures for the integration tests: real processes on fresh loopback addresses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sipp import Member, start_member, stop_process


@pytest.fixture
def member(tmp_path: Path) -> Iterator[Member]:
    """A ``sipfarm member`` answering on a fresh 127.x.y.z:5060, UDP and TCP.

    Ready when it answers an OPTIONS over UDP (or the fixture raises with its stderr).
    Stopped by PID after the test; it must exit 0 on SIGTERM.
    """
    started = start_member(tmp_path)
    try:
        yield started
    finally:
        status = stop_process(started.process)
    assert status == 0, f"member exited {status} after SIGTERM:\n{started.stderr_text()}"
