"""The ``account.settings`` codec and the digest secrets it holds (pure).

The file is one JSON object, UTF-8, keys sorted.  It holds the HA1 of every
digest algorithm we answer (RFC 7616 §3.4.2: ``H(username ":" realm ":" password)``
with the account name as username and the domain as realm), never the password.
Keys this module does not know round-trip unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: RFC 7616 §3.3 algorithm names, each with its hash.
ALGORITHMS: Mapping[str, str] = {"MD5": "md5", "SHA-256": "sha256"}


class BadSettings(ValueError):
    """An ``account.settings`` that is not what this codec writes."""


class BadSettingsChange(ValueError):
    """A change of the settings that may not be made that way (the realm, the secrets)."""


#: Keys only the codec writes: the realm is the domain's, the digest a password's.
RESERVED = frozenset({"realm", "digest"})


def ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """RFC 7616 §3.4.2 ``A1`` hashed: ``H(username ":" realm ":" password)`` in hex."""
    data = f"{username}:{realm}:{password}".encode()
    return hashlib.new(ALGORITHMS[algorithm], data).hexdigest()


def digests(username: str, realm: str, password: str) -> dict[str, str]:
    """The HA1 of every algorithm in `ALGORITHMS`."""
    return {alg: ha1(alg, username, realm, password) for alg in ALGORITHMS}


@dataclass(frozen=True, slots=True)
class AccountSettings:
    """What ``account.settings`` holds: the realm, the HA1s, and keys kept as they were."""

    realm: str
    digest: Mapping[str, str]
    other: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, username: str, realm: str, password: str) -> AccountSettings:
        return cls(realm=realm, digest=digests(username, realm, password))

    def with_password(self, username: str, password: str) -> AccountSettings:
        return AccountSettings(self.realm, digests(username, self.realm, password), self.other)

    def with_changes(self, changes: Mapping[str, Any]) -> AccountSettings:
        """These settings with ``changes`` made (a None value removes its key)."""
        reserved = sorted(RESERVED & set(changes))
        if reserved:
            raise BadSettingsChange(f"not a setting to change here: {', '.join(reserved)}")
        other = dict(self.other)
        for key, value in changes.items():
            if value is None:
                other.pop(key, None)
            else:
                other[key] = value
        return AccountSettings(self.realm, self.digest, other)

    @classmethod
    def parse(cls, data: bytes) -> AccountSettings:
        try:
            obj = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadSettings(f"not UTF-8 JSON: {exc}") from None
        except RecursionError:  # garbage such as b"[[[[…": json recurses per level
            raise BadSettings("not UTF-8 JSON: nested too deep") from None
        if not isinstance(obj, dict):
            raise BadSettings("not a JSON object")
        realm = obj.pop("realm", None)
        digest = obj.pop("digest", None)
        if not isinstance(realm, str):
            raise BadSettings("no realm")
        if not isinstance(digest, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in digest.items()
        ):
            raise BadSettings("no digest object")
        return cls(realm=realm, digest=dict(digest), other=obj)

    def __bytes__(self) -> bytes:
        obj = {**self.other, "realm": self.realm, "digest": dict(self.digest)}
        return (json.dumps(obj, sort_keys=True, ensure_ascii=False, indent=1) + "\n").encode()


def verify_password(settings: AccountSettings, username: str, password: str) -> bool:
    """True when ``password`` gives every HA1 stored in ``settings`` (and there is one)."""
    if not settings.digest:
        return False
    return all(
        alg in ALGORITHMS
        and hmac.compare_digest(ha1(alg, username, settings.realm, password), stored)
        for alg, stored in settings.digest.items()
    )
