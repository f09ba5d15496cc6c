"""Provisioning steps that take more than one store call (shared by the CLI and the HTTP API).

``sipfarm domain add|set`` and ``POST /domains``, ``PATCH /domains/<domain>`` do
the same thing: these functions are that thing, once.  They raise the store's
typed errors (:mod:`mail.errors`, :class:`mail.foldering.BadLayout`); each edge
turns those into its own answer (an exit status, an HTTP status).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .foldering import NONE, BadLayout, Method
from .mover import Mover, MoveReport
from .names import domain_name
from .store import AccountStore

__all__ = ["DomainView", "add_domain", "describe_domain", "set_domain"]


@dataclass(frozen=True, slots=True)
class DomainView:
    """Where a domain's accounts are laid out: what ``domain add|set`` and the API show."""

    domain: str
    account_foldering: str
    fast_storage: int
    domain_foldering: str  # the store's (one for every domain)

    def __str__(self) -> str:
        return (
            f"domain {self.domain}: account foldering {self.account_foldering}, "
            f"fast storage {self.fast_storage}, domain foldering {self.domain_foldering}"
        )


def describe_domain(store: AccountStore, domain: str) -> DomainView:
    """The domain's layout (NoSuchDomain when there is no such domain)."""
    domain = domain_name(domain)
    shape = store.domain_shape(domain)
    return DomainView(
        domain,
        str(shape.account_foldering),
        shape.fast,
        str(store.layout.shapes.store().domain_foldering),
    )


def add_domain(
    store: AccountStore,
    domain: str,
    *,
    account_foldering: Method | None = None,
    domain_foldering: Method | None = None,
    fast: int | None = None,
) -> DomainView:
    """Add ``domain``; ``domain_foldering`` only sets the store's while it has no domain
    (afterwards, changing it moves every domain: :func:`set_domain`)."""
    if domain_foldering is not None:
        current = store.layout.shapes.store().domain_foldering
        if domain_foldering != current:
            if store.domains():
                raise BadLayout(
                    f"the store's domain foldering is {current}; 'sipfarm domain set "
                    f"{domain} --domain-foldering {domain_foldering}' switches it "
                    "(and moves every domain)"
                )
            Mover(store, grace=0).set_store(domain_foldering)
    store.add_domain(domain, account_foldering=account_foldering or NONE, fast=fast or 0)
    return describe_domain(store, domain)


def set_domain(
    store: AccountStore,
    domain: str,
    *,
    account_foldering: Method | None = None,
    domain_foldering: Method | None = None,
    fast: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[MoveReport], DomainView]:
    """The foldering switch while the farm serves: the moves run here (a move left half
    done is finished first, and alone when nothing is asked); what moved, and the layout."""
    store.domain_path(domain)
    mover = Mover(store, progress=progress)
    reports = []
    if domain_foldering is not None:
        reports += mover.set_store(domain_foldering)
    if account_foldering is not None or fast is not None:
        reports += mover.set_domain(domain, account_foldering=account_foldering, fast=fast)
    if (domain_foldering, account_foldering, fast) == (None, None, None):
        reports += mover.finish()
    return reports, describe_domain(store, domain)
