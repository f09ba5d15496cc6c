"""``sipfarm domain`` / ``sipfarm account`` as an operator meets them, on the real binary."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from sipp import SIPFARM

pytestmark = pytest.mark.timeout(60)

WAIT_S = 10.0


def run(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SIPFARM), *args, "--data", str(data)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )


def ok(data: Path, *args: str) -> list[str]:
    result = run(data, *args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout.splitlines()


def fails(data: Path, code: int, *args: str) -> str:
    result = run(data, *args)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("sipfarm: ")
    return lines[0]


def test_domains(tmp_path: Path) -> None:
    assert ok(tmp_path, "domain", "list") == []
    assert len(ok(tmp_path, "domain", "add", "Company.COM")) == 1
    assert len(ok(tmp_path, "domain", "add", "b.example")) == 1
    assert (tmp_path / "SharedDomains" / "company.com").is_dir()
    assert ok(tmp_path, "domain", "list") == ["b.example", "company.com"]
    assert "company.com" in fails(tmp_path, 1, "domain", "add", "company.com")
    assert len(ok(tmp_path, "domain", "remove", "b.example")) == 1
    assert ok(tmp_path, "domain", "list") == ["company.com"]
    assert "b.example" in fails(tmp_path, 1, "domain", "remove", "b.example")
    fails(tmp_path, 2, "domain", "add", "../outside")
    fails(tmp_path, 2, "domain", "add")
    fails(tmp_path, 2, "domain", "frobnicate", "x.com")
    assert not (tmp_path.parent / "outside").exists()


def test_accounts(tmp_path: Path) -> None:
    ok(tmp_path, "domain", "add", "company.com")
    ok(tmp_path, "domain", "add", "b.example")
    assert len(ok(tmp_path, "account", "add", "JSmith@company.com", "--password", "Secret-1")) == 1
    ok(tmp_path, "account", "add", "albert@company.com", "--password", "Secret-2")
    ok(tmp_path, "account", "add", "zed@b.example", "--password", "Secret-3")
    assert ok(tmp_path, "account", "list", "company.com") == [
        "albert@company.com",
        "jsmith@company.com",
    ]
    assert ok(tmp_path, "account", "list") == [
        "zed@b.example",
        "albert@company.com",
        "jsmith@company.com",
    ]

    settings = tmp_path / "SharedDomains/company.com/jsmith.macnt/account.settings"
    before = settings.read_bytes()
    obj = json.loads(before)
    assert obj["realm"] == "company.com"
    assert set(obj["digest"]) == {"MD5", "SHA-256"}
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"Secret" not in path.read_bytes(), path

    assert len(ok(tmp_path, "account", "passwd", "jsmith@company.com", "--password", "New-1")) == 1
    assert settings.read_bytes() != before
    assert b"New-1" not in settings.read_bytes()
    assert sorted(p.name for p in settings.parent.iterdir()) == ["account.settings"]

    assert len(ok(tmp_path, "account", "remove", "jsmith@company.com")) == 1
    assert ok(tmp_path, "account", "list", "company.com") == ["albert@company.com"]
    assert not settings.parent.exists()


def test_account_errors(tmp_path: Path) -> None:
    assert "nowhere.com" in fails(tmp_path, 1, "account", "add", "a@nowhere.com", "--password", "x")
    fails(tmp_path, 1, "account", "list", "nowhere.com")
    ok(tmp_path, "domain", "add", "company.com")
    ok(tmp_path, "account", "add", "a@company.com", "--password", "x")
    assert "a@company.com" in fails(
        tmp_path, 1, "account", "add", "A@company.com", "--password", "y"
    )
    fails(tmp_path, 1, "account", "remove", "b@company.com")
    fails(tmp_path, 1, "account", "passwd", "b@company.com", "--password", "y")
    fails(tmp_path, 2, "account", "add", "a@company.com")
    fails(tmp_path, 2, "account", "add", "no-at-sign", "--password", "x")
    fails(tmp_path, 2, "account", "add", "../x@company.com", "--password", "x")
    fails(tmp_path, 2, "account", "add", ".hidden@company.com", "--password", "x")
    assert ok(tmp_path, "account", "list", "company.com") == ["a@company.com"]
