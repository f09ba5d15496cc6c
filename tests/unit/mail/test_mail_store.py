"""`mail.store.AccountStore` in a ``tmp_path``: the seed's tree, atomic writes, typed errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mail.api import AccountRecord, Accounts
from mail.errors import AccountExists, BadName, DomainExists, NoSuchAccount, NoSuchDomain
from mail.settings import AccountSettings, BadSettings, digests, verify_password
from mail.store import AccountStore, write_atomic

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def store(tmp_path: Path) -> AccountStore:
    return AccountStore(tmp_path)


def all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_is_an_accounts_port(store: AccountStore) -> None:
    port: Accounts = store
    assert port.domains() == []


def test_domains(store: AccountStore, tmp_path: Path) -> None:
    store.add_domain("Company.COM")
    store.add_domain("b.example")
    assert store.domains() == ["b.example", "company.com"]
    assert (tmp_path / "SharedDomains" / "company.com").is_dir()
    with pytest.raises(DomainExists):
        store.add_domain("company.com")
    store.remove_domain("b.example")
    assert store.domains() == ["company.com"]
    with pytest.raises(NoSuchDomain):
        store.remove_domain("b.example")
    assert all_files(tmp_path) == ["SharedDomains", "SharedDomains/company.com"]


def test_accounts(store: AccountStore, tmp_path: Path) -> None:
    store.add_domain("company.com")
    store.add_account("JSmith", "company.com", "pw1")
    store.add_account("albert", "company.com", "pw2")
    assert store.accounts("company.com") == ["albert", "jsmith"]
    settings = tmp_path / "SharedDomains/company.com/jsmith.macnt/account.settings"
    data = settings.read_bytes()
    assert b"pw1" not in data
    assert verify_password(AccountSettings.parse(data), "jsmith", "pw1")

    record = store.get("jsmith", "Company.com")
    assert record == AccountRecord(
        user="jsmith",
        domain="company.com",
        realm="company.com",
        ha1=AccountSettings.new("jsmith", "company.com", "pw1").digest,
    )
    assert store.get("nobody", "company.com") is None
    assert store.get("jsmith", "other.com") is None

    store.set_password("jsmith", "company.com", "new")
    assert verify_password(AccountSettings.parse(settings.read_bytes()), "jsmith", "new")
    assert not verify_password(AccountSettings.parse(settings.read_bytes()), "jsmith", "pw1")

    store.remove_account("jsmith", "company.com")
    assert store.accounts("company.com") == ["albert"]
    assert store.get("jsmith", "company.com") is None
    assert all_files(tmp_path) == [
        "SharedDomains",
        "SharedDomains/company.com",
        "SharedDomains/company.com/albert.macnt",
        "SharedDomains/company.com/albert.macnt/account.settings",
    ]


def test_remove_domain_removes_its_accounts(store: AccountStore, tmp_path: Path) -> None:
    store.add_domain("company.com")
    store.add_account("jsmith", "company.com", "pw")
    store.remove_domain("company.com")
    assert all_files(tmp_path) == ["SharedDomains"]
    store.add_domain("company.com")
    assert store.accounts("company.com") == []


def test_errors_are_typed(store: AccountStore) -> None:
    with pytest.raises(NoSuchDomain):
        store.add_account("jsmith", "company.com", "pw")
    with pytest.raises(NoSuchDomain):
        store.accounts("company.com")
    with pytest.raises(NoSuchDomain):
        store.set_password("jsmith", "company.com", "pw")
    with pytest.raises(NoSuchDomain):
        store.remove_account("jsmith", "company.com")
    store.add_domain("company.com")
    store.add_account("jsmith", "company.com", "pw")
    with pytest.raises(AccountExists):
        store.add_account("JSMITH", "company.com", "pw")
    with pytest.raises(NoSuchAccount):
        store.set_password("nobody", "company.com", "pw")
    with pytest.raises(NoSuchAccount):
        store.remove_account("nobody", "company.com")
    with pytest.raises(BadName):
        store.add_account("../../etc", "company.com", "pw")
    with pytest.raises(BadName):
        store.add_domain("../outside")
    with pytest.raises(BadName):
        store.get("jsmith", "..")


def test_half_made_account_is_not_an_account(store: AccountStore, tmp_path: Path) -> None:
    """A crash between the directory and its settings leaves no account; add completes it."""
    store.add_domain("company.com")
    (tmp_path / "SharedDomains/company.com/jsmith.macnt").mkdir()
    assert store.accounts("company.com") == []
    assert store.get("jsmith", "company.com") is None
    store.add_account("jsmith", "company.com", "pw")
    assert store.accounts("company.com") == ["jsmith"]


@pytest.mark.parametrize("fast", [0, 1])
def test_damaged_settings_name_their_file_and_a_new_password_repairs_them(
    store: AccountStore, fast: int
) -> None:
    store.add_domain("company.com", fast=fast)
    store.add_account("jsmith", "company.com", "pw")
    path = store.layout.settings_path("jsmith", "company.com")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a half-written file: the HA1s are lost
    with pytest.raises(BadSettings, match=re.escape(str(path))):
        store.get("jsmith", "company.com")
    store.set_password("jsmith", "company.com", "new")
    assert store.get("jsmith", "company.com") == AccountRecord(
        "jsmith", "company.com", "company.com", digests("jsmith", "company.com", "new")
    )


def test_atomic_write_leaves_no_temp_files(store: AccountStore, tmp_path: Path) -> None:
    store.add_domain("company.com")
    store.add_account("jsmith", "company.com", "pw")
    for n in range(5):
        store.set_password("jsmith", "company.com", f"pw{n}")
    account = tmp_path / "SharedDomains/company.com/jsmith.macnt"
    assert sorted(p.name for p in account.iterdir()) == ["account.settings"]


def test_failed_atomic_write_keeps_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "account.settings"
    target.write_bytes(b"old")

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    with monkeypatch.context() as m:
        m.setattr("mail.store.os.fsync", failing_fsync)
        with pytest.raises(OSError):
            write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["account.settings"]
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["account.settings"]
