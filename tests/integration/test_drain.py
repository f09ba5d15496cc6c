"""Health and drain of one member (`--http`): what a balancer's monitor and an operator see.

Ready: GET /health 200 and SIP OPTIONS 200.  After `sipfarm not-ready`: both 503;
`sipfarm status` says idle (no transaction left); `sipfarm ready` puts it back.
"""

from __future__ import annotations

import http.client
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sipp import (
    SIPFARM,
    Member,
    admin_member,
    options_probe,
)
from sippcalls import make_data

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def member(tmp_path: Path) -> Iterator[tuple[Member, int]]:
    with admin_member(tmp_path, make_data(tmp_path / "data", {"bob": "secret"})) as started:
        yield started


def probe(m: Member) -> int | None:
    answer = options_probe(m.host, m.port, timeout_s=2.0)
    return None if answer is None else int(answer.split(b" ", 2)[1])


def get(host: str, port: int, path: str) -> tuple[int, dict[str, object]]:
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SIPFARM), *args], capture_output=True, text=True, timeout=20, check=False
    )


def test_health_drain_and_back(member: tuple[Member, int]) -> None:
    m, port = member
    http_addr = f"{m.host}:{port}"
    assert get(m.host, port, "/health") == (200, {"state": "ready"})
    assert probe(m) == 200

    drained = cli("not-ready", "--http", http_addr)
    assert drained.returncode == 0, drained.stderr
    assert json.loads(drained.stdout)["state"] == "not-ready"
    assert get(m.host, port, "/health")[0] == 503
    assert probe(m) == 503  # the SIP health probe says so too

    status = cli("status", "--http", http_addr)
    body = json.loads(status.stdout)
    assert status.returncode == 0 and body["idle"] is True and body["state"] == "not-ready"

    back = cli("ready", "--http", http_addr)
    assert back.returncode == 0 and json.loads(back.stdout)["state"] == "ready"
    assert get(m.host, port, "/health") == (200, {"state": "ready"})
    assert probe(m) == 200


def test_unknown_paths_and_methods(member: tuple[Member, int]) -> None:
    m, port = member
    assert get(m.host, port, "/nope")[0] == 404
    assert get(m.host, port, "/not-ready")[0] == 405  # draining takes a POST
    assert get(m.host, port, "/health")[0] == 200  # and a GET did not drain it


def test_an_endpoint_nobody_listens_on_is_one_clear_line() -> None:
    r = cli("status", "--http", "127.0.0.1:1")
    assert r.returncode == 1 and r.stderr.startswith("sipfarm: cannot reach 127.0.0.1:1")
