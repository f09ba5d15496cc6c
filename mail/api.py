"""The account store port: what the rest of the server may ask of it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """One account as the registrar needs it: its names, realm and HA1 per algorithm."""

    user: str
    domain: str
    realm: str
    ha1: Mapping[str, str]


class Accounts(Protocol):
    """Domains and accounts (DESIGN.md "Account store").

    Names are folded to lower case; a bad one raises `mail.errors.BadName`.
    """

    def add_domain(self, domain: str) -> None: ...

    def remove_domain(self, domain: str) -> None: ...

    def domains(self) -> list[str]: ...

    def add_account(self, user: str, domain: str, password: str) -> None: ...

    def remove_account(self, user: str, domain: str) -> None: ...

    def accounts(self, domain: str) -> list[str]: ...

    def set_password(self, user: str, domain: str, password: str) -> None: ...

    def get(self, user: str, domain: str) -> AccountRecord | None: ...
