"""Foldering switched under reads: a real directory, readers in threads, the real CLI."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest
from sipp import SIPFARM

from mail.foldering import Method
from mail.mover import Mover
from mail.shapes import ShapeCache
from mail.store import AccountStore

pytestmark = pytest.mark.timeout(120)

USERS = [f"user{n}" for n in range(150)] + ["j", "a.b", "élodie", "日本語", "ü" * 32]


def test_every_read_during_the_moves_finds_the_account(tmp_path: Path) -> None:
    admin = AccountStore(tmp_path)
    admin.add_domain("company.com")
    for user in USERS:
        admin.add_account(user, "company.com", "pw")
        admin.write_info(user, "company.com", b"0", writer="owner")
    # The serving side: its own store, its own cache, checked every 50 ms.
    serving = AccountStore(tmp_path, shapes=ShapeCache(tmp_path, interval=0.05))
    stop = threading.Event()
    misses: list[str] = []
    reads = [0]
    written: dict[str, bytes] = {}

    def reader() -> None:
        while not stop.is_set():
            for user in USERS:
                if serving.get(user, "company.com") is None:
                    misses.append(f"get {user}")
                if serving.read_info(user, "company.com") is None:
                    misses.append(f"info {user}")
                reads[0] += 1

    def writer() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            user = USERS[n % len(USERS)]
            data = str(n).encode()
            serving.write_info(user, "company.com", data, writer="owner")
            written[user] = data

    threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
    for t in threads:
        t.start()
    try:
        mover = Mover(admin, grace=0.2)
        mover.set_domain("company.com", account_foldering=Method.parse("1/1"))
        mover.set_domain("company.com", fast=2)
        mover.set_store(Method.parse("1"))
        mover.set_domain("company.com", account_foldering=Method.parse("2/1"), fast=1)
        mover.set_store(Method())
        mover.set_domain("company.com", account_foldering=Method(), fast=0)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert misses == []
    assert reads[0] > len(USERS)
    assert admin.accounts("company.com") == sorted(USERS)
    for user, data in written.items():  # the last write of each account is the one kept
        assert admin.read_info(user, "company.com") == data, user


def run(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SIPFARM), *args, "--data", str(data)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def ok(data: Path, *args: str) -> list[str]:
    result = run(data, *args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout.splitlines()


def fails(data: Path, code: int, *args: str) -> str:
    result = run(data, *args)
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("sipfarm: ")
    return lines[0]


def test_cli_foldering(tmp_path: Path) -> None:
    ok(
        tmp_path,
        "domain",
        "add",
        "company.com",
        "--account-foldering",
        "2/1",
        "--fast-storage",
        "2",
    )
    ok(tmp_path, "account", "add", "jsmith@company.com", "--password", "pw")
    base = tmp_path / "SharedDomains"
    assert (base / "company.com/js.sub/m.sub/jsmith.macnt").is_dir()
    assert (base / "company.com/fast/js.sub/m.sub/jsmith.settings").is_file()

    out = ok(
        tmp_path,
        "domain",
        "set",
        "company.com",
        "--account-foldering",
        "1/1",
        "--fast-storage",
        "0",
    )
    assert out[-1] == (
        "domain company.com: account foldering 1/1, fast storage 0, domain foldering none"
    )
    assert (base / "company.com/j.sub/s.sub/jsmith.macnt/account.settings").is_file()
    ok(tmp_path, "domain", "set", "company.com", "--domain-foldering", "1")
    assert (base / "c.sub/company.com/j.sub/s.sub/jsmith.macnt/account.settings").is_file()
    assert ok(tmp_path, "domain", "list") == ["company.com"]
    assert ok(tmp_path, "account", "list") == ["jsmith@company.com"]
    ok(tmp_path, "domain", "set", "company.com")  # nothing pending: says the shape

    for bad in ("3x", "0", "1//1", ""):
        assert "foldering" in fails(
            tmp_path, 2, "domain", "set", "company.com", "--account-foldering", bad
        )
    fails(tmp_path, 2, "domain", "add", "b.com", "--fast-storage", "x")
    assert "0 (off) to 3" in fails(tmp_path, 2, "domain", "add", "b.com", "--fast-storage", "4")
    assert "domain set" in fails(tmp_path, 2, "domain", "add", "b.com", "--domain-foldering", "2")
    fails(tmp_path, 2, "domain", "add", "fast")
    fails(tmp_path, 1, "domain", "set", "nowhere.com", "--fast-storage", "1")


def test_cli_import(tmp_path: Path) -> None:
    ok(tmp_path, "domain", "add", "company.com", "--account-foldering", "1/1")
    csv = tmp_path / "accounts.csv"
    csv.write_text(
        "".join(f"user{n}@company.com,pw{n}\n" for n in range(2000)) + "élodie@company.com,x\n"
    )
    out = ok(tmp_path, "account", "import", str(csv))
    assert out[-1].startswith("2001 accounts imported in ")
    assert out[-1].endswith(" accounts/s)")
    assert len(ok(tmp_path, "account", "list", "company.com")) == 2001
    assert "line 1" in fails(tmp_path, 1, "account", "import", str(csv))

    for text, code in (
        ("a@company.com,pw\nb@company.com\n", 2),
        ("a@company.com,pw\na@company.com,pw2\n", 2),
        ("../x@company.com,pw\n", 2),
        ("a@nowhere.com,pw\n", 1),
    ):
        csv.write_text(text)
        assert fails(tmp_path, code, "account", "import", str(csv))
    csv.write_bytes(b"\xff\xfe@company.com,pw\n")
    fails(tmp_path, 2, "account", "import", str(csv))
    fails(tmp_path, 1, "account", "import", str(tmp_path / "missing.csv"))
    assert len(ok(tmp_path, "account", "list", "company.com")) == 2001
