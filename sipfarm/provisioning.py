"""The provisioning API: domains and accounts as JSON resources over HTTP (issue 6 item 4).

Served by the member's admin endpoint (:mod:`sipfarm.admin`) under ``/domains``,
behind HTTP Basic authentication with the admin password (user ``admin``; a salted
PBKDF2 key of it is kept in ``<data>/admin.password``, set with ``sipfarm admin
password``; without that file the API answers 401 to everyone).  The health,
status and drain routes stay open to the balancer.

====== =========================================== ===========================================
method path                                         body / answer
====== =========================================== ===========================================
GET    /domains                                     → ``{"domains": [...]}``
POST   /domains                                     ``{"domain", "account_foldering"?,
                                                    "domain_foldering"?, "fast_storage"?}``
                                                    → 201 and the domain's layout
GET    /domains/D                                   → its layout
PATCH  /domains/D                                   ``{"account_foldering"?, "domain_foldering"?,
                                                    "fast_storage"?}``: the foldering switch
                                                    while serving → what moved, the layout
DELETE /domains/D                                   → 204
GET    /domains/D/accounts                          → ``{"accounts": [...]}``
POST   /domains/D/accounts                          ``{"user", "password"}`` → 201
GET    /domains/D/accounts/U                        → ``{"user", "domain", "realm",
                                                    "algorithms"}`` (never a hash)
PUT    /domains/D/accounts/U/password               ``{"password"}`` → 200
GET    /domains/D/accounts/U/settings               → ``{"settings": {...}}``: the account's
                                                    own settings (never the realm or a hash)
PATCH  /domains/D/accounts/U/settings               ``{"key": value, "other": null}``: set
                                                    keys, remove those given null → 200
GET    /domains/D/accounts/U/aliases                → ``{"aliases": [...]}``
PUT    /domains/D/accounts/U/aliases                ``{"aliases": [...]}``: its other names in
                                                    the domain (``mail.aliases``) → 200
DELETE /domains/D/accounts/U                        → 204 (its aliases go with it)
====== =========================================== ===========================================

In a farm each write is done by its subject's writer (:meth:`Provisioning.subject`;
``sipfarm.node.Member.provide``): an account's ring owner, a domain's controller;
503 when that member cannot be asked.

Errors are JSON ``{"error": "..."}``: 400 for a bad request (what is wrong: a bad
name, a missing field, a foldering method that is not one), 401 without the
admin password, 404 for an unknown domain or account, 405 for a method a path
does not take, 409 for a domain, account or alias that exists already, 413 for a body
over 1 MiB, 500 (logged) when the storage fails.

:meth:`Provisioning.handle` does blocking file work (a domain switch moves
directories): the admin endpoint runs it in a worker thread, never on the loop.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote

from mail import provision
from mail.aliases import (
    AliasExists,
    BadAliases,
    account_aliases,
    aliases,
    drop_aliases,
    set_aliases,
)
from mail.errors import (
    AccountExists,
    AccountStoreError,
    BadName,
    DomainExists,
    NoSuchAccount,
    NoSuchDomain,
)
from mail.foldering import BadLayout, Method, fast_index
from mail.names import account_name
from mail.settings import BadSettingsChange
from mail.store import AccountStore, write_atomic

logger = logging.getLogger(__name__)

__all__ = ["PASSWORD_FILE", "Answer", "Provisioning", "Subject", "set_admin_password"]

#: The admin password's key (PBKDF2-HMAC-SHA256, salted), in the data directory.
PASSWORD_FILE = "admin.password"
#: PBKDF2 iterations: some 10 ms per check (once per password: the answer is kept).
ITERATIONS = 20_000
#: The largest request body taken.
MAX_BODY = 1024 * 1024
REALM = "sipfarm provisioning"

Answer = tuple[int, dict[str, Any] | None]


class Subject(NamedTuple):
    """What a provisioning write changes: one account (``user`` set), or a domain."""

    domain: str
    user: str | None = None


_PATH = re.compile(
    r"^/domains(?:/([^/]+)(/accounts(?:/([^/]+)(?:/(password|aliases|settings))?)?)?)?$"
)


class _BadRequest(Exception):
    """400: the request says something wrong (the text says what)."""


def _derive(password: bytes, salt: bytes) -> str:
    return hashlib.pbkdf2_hmac("sha256", password, salt, ITERATIONS).hex()


def set_admin_password(data: Path, password: str) -> None:
    """Keep ``password`` as the farm's admin password: ``pbkdf2-sha256$N$salt$hash``
    (0600, written atomically)."""
    if not password:
        raise ValueError("the admin password may not be empty")
    salt = secrets.token_bytes(16)
    line = f"pbkdf2-sha256${ITERATIONS}${salt.hex()}${_derive(password.encode(), salt)}\n"
    path = data / PASSWORD_FILE
    write_atomic(path, line.encode())
    os.chmod(path, 0o600)


class Provisioning:
    """The resources of the module docstring over the account store in ``data``."""

    def __init__(self, store: AccountStore, data: Path) -> None:
        self.store = store
        self.data = data
        self._accepted: tuple[str, bytes] | None = None  # the stored line, the header

    # -- authentication ------------------------------------------------------------------

    def authorized(self, authorization: bytes | None) -> bool:
        """Whether ``Authorization: Basic`` carries ``admin`` and the admin password.

        Without a password file nobody is: provisioning over HTTP is off until the
        operator sets one.  Read on each request, so a new password takes at once.
        """
        try:
            stored = (self.data / PASSWORD_FILE).read_text().strip()
        except OSError:
            return False
        if not authorization or not authorization.lower().startswith(b"basic "):
            return False
        if self._accepted == (stored, authorization):
            return True  # the key derivation is slow by design: once per password
        try:
            credentials = base64.b64decode(authorization[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, _, password = credentials.partition(b":")
        try:
            scheme, iterations, salt, want = stored.split("$")
            if scheme != "pbkdf2-sha256" or int(iterations) != ITERATIONS:
                raise ValueError(scheme)
            got = _derive(password, bytes.fromhex(salt))
        except ValueError:
            logger.error("provisioning: %s is not a password this release wrote", PASSWORD_FILE)
            return False
        if user != b"admin" or not hmac.compare_digest(got, want):
            return False
        self._accepted = (stored, authorization)
        return True

    def password_set(self) -> bool:
        """Whether the operator set an admin password (``sipfarm admin password``)."""
        return (self.data / PASSWORD_FILE).exists()

    @staticmethod
    def challenge() -> list[tuple[str, str]]:
        return [("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')]

    @staticmethod
    def serves(path: str) -> bool:
        return path == "/domains" or path.startswith("/domains/")

    # -- requests ------------------------------------------------------------------------

    @staticmethod
    def subject(method: str, path: str, body: bytes) -> Subject | None:
        """What a request writes, so that the farm can send it to that thing's writer:
        an account's to its owner, a domain's to the controller.  None for a read, and
        for a request too wrong to name its subject (answered 400/404 where it is).
        """
        found = _PATH.match(path)
        if method in ("GET", "HEAD") or found is None:
            return None
        domain, accounts, user, part = found.groups()
        try:
            if domain is None:
                if method != "POST":
                    return None
                named = _json(body, required=("domain",), optional=_LAYOUT)["domain"]
                return Subject(named.lower()) if isinstance(named, str) and named else None
            domain = _segment(domain).lower()
            if accounts is None:
                return Subject(domain)
            if user is None:
                if method != "POST":
                    return None
                named = _json(body, required=("user", "password"))["user"]
                if not isinstance(named, str) or not named:
                    return None
                return Subject(domain, named.lower())
            if part == "aliases":  # one file per domain (mail.aliases): its writer's
                return Subject(domain)
            return Subject(domain, _segment(user).lower())
        except _BadRequest:
            return None

    def handle(self, method: str, path: str, body: bytes) -> Answer:
        """The answer to one authorized request (blocking: run it off the loop)."""
        found = _PATH.match(path)
        if found is None:
            return 404, {"error": f"no such path: {path}"}
        domain, accounts, user, part = found.groups()
        try:
            if domain is None:
                return self._domains(method, body)
            domain = _segment(domain)
            if accounts is None:
                return self._domain(method, domain, body)
            if user is None:
                return self._accounts(method, domain, body)
            user = _segment(user)
            if part == "password":
                return self._password(method, domain, user, body)
            if part == "aliases":
                return self._aliases(method, domain, user, body)
            if part == "settings":
                return self._settings(method, domain, user, body)
            return self._account(method, domain, user)
        except (_BadRequest, BadName, BadLayout, BadSettingsChange) as exc:
            return 400, {"error": str(exc)}
        except AliasExists as exc:
            return 409, {"error": f"alias exists already: {exc}"}
        except (NoSuchDomain, NoSuchAccount) as exc:
            kind = "domain" if isinstance(exc, NoSuchDomain) else "account"
            return 404, {"error": f"no such {kind}: {exc}"}
        except (DomainExists, AccountExists) as exc:
            kind = "domain" if isinstance(exc, DomainExists) else "account"
            return 409, {"error": f"{kind} exists already: {exc}"}
        except (AccountStoreError, OSError) as exc:
            logger.error("provisioning %s %s failed: %s", method, path, exc)
            return 500, {"error": f"storage failed: {exc}"}

    def _domains(self, method: str, body: bytes) -> Answer:
        if method == "GET":
            return 200, {"domains": self.store.domains()}
        if method != "POST":
            return _not_allowed("GET, POST")
        fields = _json(body, required=("domain",), optional=_LAYOUT)
        view = provision.add_domain(self.store, _text(fields, "domain"), **_layout(fields))
        logger.info("provisioning: %s added", view.domain)
        return 201, _view(view)

    def _domain(self, method: str, domain: str, body: bytes) -> Answer:
        if method == "GET":
            return 200, _view(provision.describe_domain(self.store, domain))
        if method == "PATCH":
            fields = _json(body, optional=_LAYOUT)
            reports, view = provision.set_domain(self.store, domain, **_layout(fields))
            moved = [{"what": r.what, "moved": r.moved, "seconds": r.seconds} for r in reports]
            return 200, {**_view(view), "moves": moved}
        if method == "DELETE":
            self.store.remove_domain(domain)
            logger.info("provisioning: domain %s removed", domain)
            return 204, None
        return _not_allowed("GET, PATCH, DELETE")

    def _accounts(self, method: str, domain: str, body: bytes) -> Answer:
        if method == "GET":
            return 200, {"accounts": self.store.accounts(domain)}
        if method != "POST":
            return _not_allowed("GET, POST")
        fields = _json(body, required=("user", "password"))
        user = _text(fields, "user")
        try:
            target = aliases(self.store, domain).get(account_name(user))
        except BadAliases as exc:  # the next alias change rewrites it
            logger.error("provisioning: %s", exc)
            target = None
        if target is not None:  # an account would hide the alias
            raise AliasExists(f"{account_name(user)}@{domain} is an alias of {target}")
        self.store.add_account(user, domain, _text(fields, "password"))
        logger.info("provisioning: account %s@%s added", user, domain)
        return 201, self._record(user, domain)

    def _account(self, method: str, domain: str, user: str) -> Answer:
        if method == "GET":
            return 200, self._record(user, domain)
        if method == "DELETE":
            self.store.remove_account(user, domain)
            drop_aliases(self.store, user, domain)
            logger.info("provisioning: account %s@%s removed", user, domain)
            return 204, None
        return _not_allowed("GET, DELETE")

    def _aliases(self, method: str, domain: str, user: str, body: bytes) -> Answer:
        if method == "GET":
            return 200, {"aliases": account_aliases(self.store, user, domain)}
        if method != "PUT":
            return _not_allowed("GET, PUT")
        names = _json(body, required=("aliases",))["aliases"]
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise _BadRequest("aliases must be a list of names")
        return 200, {"aliases": set_aliases(self.store, user, domain, names)}

    def _settings(self, method: str, domain: str, user: str, body: bytes) -> Answer:
        if method == "GET":
            return 200, {"settings": self.store.settings(user, domain)}
        if method != "PATCH":
            return _not_allowed("GET, PATCH")
        changes = _json(body, optional=None)
        return 200, {"settings": self.store.update_settings(user, domain, changes)}

    def _password(self, method: str, domain: str, user: str, body: bytes) -> Answer:
        if method != "PUT":
            return _not_allowed("PUT")
        fields = _json(body, required=("password",))
        self.store.set_password(user, domain, _text(fields, "password"))
        return 200, self._record(user, domain)

    def _record(self, user: str, domain: str) -> dict[str, Any]:
        record = self.store.get(user, domain)
        if record is None:
            self.store.domain_path(domain)  # NoSuchDomain before NoSuchAccount
            raise NoSuchAccount(f"{user}@{domain}")
        return {
            "user": record.user,
            "domain": record.domain,
            "realm": record.realm,
            "algorithms": sorted(record.ha1),
        }


_LAYOUT = ("account_foldering", "domain_foldering", "fast_storage")


def _not_allowed(allow: str) -> Answer:
    return 405, {"error": f"takes {allow}", "allow": allow}


def _segment(text: str) -> str:
    """A path segment, percent-decoded (names may have multi-byte characters)."""
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise _BadRequest(f"not UTF-8: {text!r}") from None


def _json(
    body: bytes, *, required: tuple[str, ...] = (), optional: tuple[str, ...] | None = ()
) -> dict[str, Any]:
    try:
        fields = json.loads(body or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise _BadRequest("the body must be a JSON object")
    missing = [k for k in required if k not in fields]
    if missing:
        raise _BadRequest(f"missing: {', '.join(missing)}")
    if optional is None:  # any field
        return fields
    unknown = sorted(set(fields) - set(required) - set(optional))
    if unknown:
        raise _BadRequest(f"unknown fields: {', '.join(unknown)}")
    return fields


def _text(fields: dict[str, Any], key: str) -> str:
    value = fields[key]
    if not isinstance(value, str) or not value:
        raise _BadRequest(f"{key} must be a non-empty string")
    return value


def _layout(fields: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("account_foldering", "domain_foldering"):
        if key in fields:
            out[key] = Method.parse(_text(fields, key))
    if "fast_storage" in fields:
        value = fields["fast_storage"]
        if type(value) is not int:
            raise _BadRequest("fast_storage must be an integer")
        out["fast"] = fast_index(str(value))
    return out


def _view(view: provision.DomainView) -> dict[str, Any]:
    return {
        "domain": view.domain,
        "account_foldering": view.account_foldering,
        "fast_storage": view.fast_storage,
        "domain_foldering": view.domain_foldering,
    }
