"""`mail.layout` and `mail.names`: the seed's paths, literally, and the names allowed in them."""

from __future__ import annotations

from pathlib import Path

import pytest

from mail.errors import BadName
from mail.layout import Layout
from mail.names import account_name, address, domain_name

pytestmark = pytest.mark.timeout(10)


def test_paths_are_the_seeds() -> None:
    layout = Layout(Path("/var/sipfarm"))
    assert layout.shared_domains == Path("/var/sipfarm/SharedDomains")
    assert layout.domain_dir("company.com") == Path("/var/sipfarm/SharedDomains/company.com")
    assert layout.account_dir("jsmith", "company.com") == Path(
        "/var/sipfarm/SharedDomains/company.com/jsmith.macnt"
    )
    assert layout.settings_path("jsmith", "company.com") == Path(
        "/var/sipfarm/SharedDomains/company.com/jsmith.macnt/account.settings"
    )


def test_paths_fold_case() -> None:
    layout = Layout(Path("d"))
    assert layout.settings_path("JSmith", "Company.COM") == Path(
        "d/SharedDomains/company.com/jsmith.macnt/account.settings"
    )


def test_names_of_directories() -> None:
    layout = Layout(Path("d"))
    assert layout.account_of(Path("d/SharedDomains/c.com/jsmith.macnt")) == "jsmith"
    assert layout.account_of(Path("d/SharedDomains/c.com/JSmith.macnt")) is None
    assert layout.account_of(Path("d/SharedDomains/c.com/.jsmith.macnt.removed-1")) is None
    assert layout.account_of(Path("d/SharedDomains/c.com/jsmith")) is None
    assert layout.domain_of(Path("d/SharedDomains/c.com")) == "c.com"
    assert layout.domain_of(Path("d/SharedDomains/.c.com.removed-ab")) is None


@pytest.mark.parametrize("text", ["example.com", "a", "x-1.example", "1host.example", "a" * 63])
def test_good_domains(text: str) -> None:
    assert domain_name(text) == text


@pytest.mark.parametrize(
    "text",
    ["", ".", "..", "../etc", "a/b", "a..b", ".example.com", "example.com.", "-a.com",
     "a-.com", "a_b.com", "a b", "a\x00b", "a" * 64, "é.com", "a\\b"],
)  # fmt: skip
def test_bad_domains(text: str) -> None:
    with pytest.raises(BadName):
        domain_name(text)


@pytest.mark.parametrize("text", ["jsmith", "j.smith", "j_smith", "j-smith", "0", "a..b"])
def test_good_accounts(text: str) -> None:
    assert account_name(text) == text


@pytest.mark.parametrize(
    "text", ["", ".", "..", "../x", "x/..", "/x", ".hidden", "a b", "a@b", "a\x00", "a" * 65]
)
def test_bad_accounts(text: str) -> None:
    with pytest.raises(BadName):
        account_name(text)


def test_uppercase_folds() -> None:
    assert account_name("JSmith") == "jsmith"
    assert domain_name("Company.COM") == "company.com"
    assert address("JSmith@Company.COM") == ("jsmith", "company.com")


def test_address_needs_an_at() -> None:
    with pytest.raises(BadName):
        address("jsmith")
    with pytest.raises(BadName):
        address("../x@company.com")


def test_bad_name_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        Layout(Path("d")).account_dir("..", "company.com")
