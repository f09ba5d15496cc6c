"""`mail.mover` and `mail.shapes` in a ``tmp_path``: switches, resumed moves, the settings cache."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from mail.foldering import BadLayout, DomainShape, Method
from mail.mover import LOCK_FILE, Mover, MoveRunning, move_file
from mail.shapes import ShapeCache
from mail.store import AccountStore, write_atomic

pytestmark = pytest.mark.timeout(30)

USERS = ["jsmith", "albert", "j", "a.b", "élodie", "日本語", "ü" * 32]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> AccountStore:
    s = AccountStore(tmp_path)
    s.add_domain("company.com")
    for user in USERS:
        s.add_account(user, "company.com", "pw")
        s.write_info(user, "company.com", f"info of {user}".encode(), writer="m1")
    return s


def check(store: AccountStore) -> None:
    assert store.accounts("company.com") == sorted(USERS)
    assert store.domains() == ["company.com"]
    for user in USERS:
        assert store.get(user, "company.com") is not None, user
        assert store.read_info(user, "company.com") == f"info of {user}".encode()


SWITCHES = [
    ("domain", "1/1", None),
    ("domain", None, 2),
    ("store", "1/1", None),
    ("domain", "2/1", 1),
    ("domain", None, 5),
    ("store", "2", None),
    ("domain", None, 0),
    ("store", "none", None),
    ("domain", "none", 0),
]


def test_every_switch_keeps_every_account(store: AccountStore, tmp_path: Path) -> None:
    mover = Mover(store, grace=0)
    for what, method, fast in SWITCHES:
        if what == "store":
            assert method is not None
            mover.set_store(Method.parse(method))
        else:
            mover.set_domain(
                "company.com",
                account_foldering=None if method is None else Method.parse(method),
                fast=fast,
            )
        check(store)
        # A fresh process (no cache) finds them too.
        check(AccountStore(tmp_path))
    leftovers = [
        p for p in tmp_path.rglob("*") if p.name.endswith((".sub", ".tmp")) or p.name == "fast"
    ]
    assert leftovers == []
    assert not (tmp_path / LOCK_FILE).exists()


def test_seed_layout_on_disk(store: AccountStore, tmp_path: Path) -> None:
    mover = Mover(store, grace=0)
    mover.set_domain("company.com", account_foldering=Method.parse("1/1"), fast=1)
    base = tmp_path / "SharedDomains"
    assert (base / "company.com/a.sub/l.sub/albert.macnt").is_dir()
    assert (base / "fast/company.com/a.sub/l.sub/albert.settings").is_file()
    assert (base / "fast/company.com/a.sub/l.sub/albert.info").is_file()
    assert not (base / "company.com/a.sub/l.sub/albert.macnt/account.settings").exists()
    mover.set_store(Method.parse("1"))
    assert (base / "c.sub/company.com/j.sub/s.sub/jsmith.macnt").is_dir()
    assert (base / "fast/c.sub/company.com/j.sub/s.sub/jsmith.settings").is_file()


def test_a_crashed_move_is_finished(store: AccountStore, tmp_path: Path) -> None:
    """The settings say a move runs (moving_from); half the accounts moved; finish does the rest."""
    new = DomainShape(Method.parse("1"), 0, (Method(), 0))
    store.write_domain_shape("company.com", new)
    domain = tmp_path / "SharedDomains/company.com"
    (domain / "j.sub").mkdir()
    (domain / "jsmith.macnt").rename(domain / "j.sub/jsmith.macnt")
    (tmp_path / LOCK_FILE).write_text("otherhost 1\n")
    check(store)  # every account found during the (stopped) move
    with pytest.raises(MoveRunning):
        Mover(store, grace=0).finish()
    # A lock of a process of this host that is gone is taken over.
    (tmp_path / LOCK_FILE).write_text(f"{socket.gethostname()} 999999999\n")
    reports = Mover(store, grace=0).finish()
    assert [r.what for r in reports] == ["company.com"]
    assert store.domain_shape("company.com") == DomainShape(Method.parse("1"), 0)
    assert (domain / "a.sub/albert.macnt").is_dir()
    check(store)


def test_a_newer_file_at_the_new_place_wins(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "d/new"
    old.write_bytes(b"older")
    new.parent.mkdir()
    new.write_bytes(b"written during the move")
    assert move_file(old, new) == 1
    assert new.read_bytes() == b"written during the move"
    assert not old.exists()
    assert move_file(old, new) == 0


def test_writes_during_a_move_go_to_the_new_place(store: AccountStore) -> None:
    """With the new shape written but nothing moved yet, a fast write lands at the new place."""
    store.write_domain_shape("company.com", DomainShape(Method(), 2, (Method(), 0)))
    store.write_info("jsmith", "company.com", b"new", writer="m1")
    assert store.read_info("jsmith", "company.com") == b"new"
    Mover(store, grace=0).finish()
    assert store.read_info("jsmith", "company.com") == b"new"
    assert store.read_info("albert", "company.com") == b"info of albert"


def test_bad_switches_change_nothing(store: AccountStore) -> None:
    mover = Mover(store, grace=0)
    with pytest.raises(BadLayout):
        mover.set_domain("company.com", fast=3)
    mover.set_store(Method.parse("1"))
    mover.set_domain("company.com", account_foldering=Method.parse("1/1"), fast=5)
    with pytest.raises(BadLayout, match=r"company\.com"):
        mover.set_store(Method())  # index 5 needs a domain folder and two account folders
    check(store)


def test_the_cache_sees_another_process_within_its_interval(
    store: AccountStore, tmp_path: Path
) -> None:
    clock = Clock()
    cache = ShapeCache(tmp_path, interval=1.0, clock=clock)
    assert cache.domain("company.com") == DomainShape()
    other = AccountStore(tmp_path)
    other.write_domain_shape("company.com", DomainShape(Method.parse("1")))
    assert cache.domain("company.com") == DomainShape()  # cached
    clock.now = 1.5
    assert cache.domain("company.com") == DomainShape(Method.parse("1"))
    write_atomic(tmp_path / "SharedDomains.settings", b'{"domain_foldering": "1"}')
    clock.now = 3.0
    assert cache.store().domain_foldering == Method.parse("1")
