"""`mail.aliases` and the account's own settings, in a ``tmp_path`` store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mail.aliases import (
    ALIASES_FILE,
    AliasExists,
    BadAliases,
    account_aliases,
    aliases,
    drop_aliases,
    set_aliases,
)
from mail.directory import UNREADABLE_RETRY, Directory
from mail.errors import AccountExists, AccountUnreadable, BadName, NoSuchAccount, NoSuchDomain
from mail.foldering import Method
from mail.mover import Mover
from mail.settings import BadSettingsChange
from mail.store import AccountStore

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def store(tmp_path: Path) -> AccountStore:
    s = AccountStore(tmp_path)
    s.add_domain("company.com")
    s.add_account("alice", "company.com", "pw")
    s.add_account("bob", "company.com", "pw")
    return s


def test_aliases_are_one_file_in_the_domain_directory(store: AccountStore, tmp_path: Path) -> None:
    assert aliases(store, "company.com") == {}
    assert set_aliases(store, "Alice", "company.com", ["Al", "ally", "al"]) == ["al", "ally"]
    assert set_aliases(store, "bob", "company.com", ["bobby", "Rob\u00e9rt"]) == [
        "bobby",
        "rob\u00e9rt",
    ]
    path = tmp_path / "SharedDomains" / "company.com" / ALIASES_FILE
    assert json.loads(path.read_text("utf-8")) == {
        "al": "alice",
        "ally": "alice",
        "bobby": "bob",
        "rob\u00e9rt": "bob",
    }
    assert account_aliases(store, "alice", "company.com") == ["al", "ally"]
    # Replacing: what alice no longer has is free again; bob's stay.
    assert set_aliases(store, "alice", "company.com", ["ali"]) == ["ali"]
    assert aliases(store, "company.com") == {"ali": "alice", "bobby": "bob", "rob\u00e9rt": "bob"}
    drop_aliases(store, "bob", "company.com")
    assert aliases(store, "company.com") == {"ali": "alice"}


def test_an_alias_is_no_account_and_no_other_accounts_alias(store: AccountStore) -> None:
    set_aliases(store, "alice", "company.com", ["al"])
    with pytest.raises(AliasExists):
        set_aliases(store, "bob", "company.com", ["al"])
    with pytest.raises(AccountExists):
        set_aliases(store, "alice", "company.com", ["bob"])
    with pytest.raises(BadName):
        set_aliases(store, "alice", "company.com", ["alice"])
    with pytest.raises(BadName):
        set_aliases(store, "alice", "company.com", ["../x"])
    with pytest.raises(NoSuchAccount):
        set_aliases(store, "nobody", "company.com", ["n"])
    with pytest.raises(NoSuchDomain):
        aliases(store, "nowhere.example")
    assert aliases(store, "company.com") == {"al": "alice"}  # nothing written by a refusal


def test_a_damaged_aliases_file_is_refused_by_readers_and_replaced_by_a_writer(
    store: AccountStore, tmp_path: Path
) -> None:
    path = tmp_path / "SharedDomains" / "company.com" / ALIASES_FILE
    path.write_bytes(b'{"al": "ali')
    with pytest.raises(BadAliases, match=ALIASES_FILE):
        aliases(store, "company.com")
    directory = Directory(store, aliases=lambda d: aliases(store, d))
    assert directory.canonical("al", "company.com") is None  # logged, not raised
    assert directory.canonical("alice", "company.com") == "alice"
    set_aliases(store, "bob", "company.com", ["rob"])
    assert aliases(store, "company.com") == {"rob": "bob"}


def test_the_directory_resolves_aliases_and_forgets_on_change(store: AccountStore) -> None:
    now = [0.0]
    directory = Directory(store, aliases=lambda d: aliases(store, d), clock=lambda: now[0])
    assert directory.canonical("al", "company.com") is None
    set_aliases(store, "alice", "company.com", ["al"])
    assert directory.canonical("al", "company.com") is None  # cached
    directory.clear()
    assert directory.canonical("AL", "Company.com") == "alice"
    assert directory.canonical("Bob", "company.com") == "bob"
    store.remove_account("alice", "company.com")  # an alias of a removed account: none
    directory.clear()
    assert directory.canonical("al", "company.com") is None


def test_aliases_move_with_the_domain(store: AccountStore) -> None:
    set_aliases(store, "alice", "company.com", ["al"])
    Mover(store, grace=0).set_store(Method.parse("1"))
    assert store.domain_path("company.com").parent.name == "c.sub"
    assert aliases(store, "company.com") == {"al": "alice"}


def test_an_accounts_own_settings(store: AccountStore) -> None:
    assert store.settings("alice", "company.com") == {}
    changed = store.update_settings("alice", "company.com", {"language": "fr", "max_calls": 2})
    assert changed == {"language": "fr", "max_calls": 2}
    assert store.update_settings("alice", "company.com", {"language": None}) == {"max_calls": 2}
    assert store.settings("Alice", "company.com") == {"max_calls": 2}
    record = store.get("alice", "company.com")
    assert record is not None and record.realm == "company.com"  # the secrets are kept
    with pytest.raises(BadSettingsChange, match="digest"):
        store.update_settings("alice", "company.com", {"digest": {}})
    with pytest.raises(NoSuchAccount):
        store.settings("nobody", "company.com")


def test_an_unreadable_account_is_neither_known_nor_absent(
    store: AccountStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Damaged settings (or a storage error) raise AccountUnreadable, not None: the SIP
    core answers 500, never the 404 of an account that does not exist.  The store is
    read again after UNREADABLE_RETRY, and a repair is seen at once after forget()."""
    now = [0.0]
    directory = Directory(store, clock=lambda: now[0])
    settings = store.layout.settings_path("alice", "company.com")
    settings.write_bytes(settings.read_bytes()[:10])
    with pytest.raises(AccountUnreadable, match="alice"):
        directory.account("alice", "company.com")
    with pytest.raises(AccountUnreadable):
        directory.canonical("alice", "company.com")  # the alias lookup does not hide it
    assert sum("alice" in r.message for r in caplog.records if r.levelname == "ERROR") == 1
    store.set_password("alice", "company.com", "new")  # the operator's repair
    with pytest.raises(AccountUnreadable):  # not read again within the retry interval
        directory.account("alice", "company.com")
    now[0] += UNREADABLE_RETRY
    assert directory.account("alice", "company.com") is not None
    assert directory.account("nobody", "company.com") is None  # absent: None, as ever
    settings.write_bytes(b"{")
    directory.forget("alice", "company.com")
    with pytest.raises(AccountUnreadable):
        directory.account("alice", "company.com")
    store.set_password("alice", "company.com", "again")
    directory.forget("alice", "company.com")  # provisioning's forget: read afresh
    assert directory.account("alice", "company.com") is not None
