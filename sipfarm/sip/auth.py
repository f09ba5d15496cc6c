"""Credentials and challenges: Authorization, WWW-Authenticate and their proxy twins.

RFC 3261 §20.7, §20.44, §25.1 (``challenge``, ``credentials``) and RFC 7616.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import BadRequest
from .grammar import TOKEN, WS, quote, scan_quoted, unquote

__all__ = ["AuthValue", "parse_auth"]

#: Parameters whose value RFC 7616 writes as a token, not a quoted-string.
_TOKEN_VALUED = frozenset({"algorithm", "stale", "nc", "qop"})


@dataclass(frozen=True, slots=True)
class AuthValue:
    """``scheme param=value, …``: a challenge or a set of credentials."""

    scheme: str
    params: tuple[tuple[str, str], ...]

    def get(self, name: str) -> str | None:
        """The unquoted value of parameter ``name`` (case-insensitive)."""
        lname = name.lower()
        for k, v in self.params:
            if k.lower() == lname:
                return unquote(v)
        return None

    def __str__(self) -> str:
        return f"{self.scheme} " + ", ".join(f"{k}={v}" for k, v in self.params)

    @classmethod
    def build(cls, scheme: str, **values: str) -> AuthValue:
        """Build with values quoted as RFC 7616 writes them."""
        return cls(
            scheme,
            tuple((k, v if k in _TOKEN_VALUED else quote(v)) for k, v in values.items()),
        )


def parse_auth(text: str) -> AuthValue:
    """Parse one credentials or challenge value."""
    t = text.strip(WS)
    i = 0
    n = len(t)
    while i < n and t[i] not in WS:
        i += 1
    scheme = t[:i]
    if not scheme or not TOKEN.issuperset(scheme):
        raise BadRequest("Bad authentication scheme")
    params: list[tuple[str, str]] = []
    while i < n:
        while i < n and t[i] in WS:
            i += 1
        if i >= n:
            break
        eq = t.find("=", i)
        if eq < 0:
            raise BadRequest("Bad authentication parameter")
        name = t[i:eq].strip(WS)
        if not name or not TOKEN.issuperset(name):
            raise BadRequest("Bad authentication parameter")
        j = eq + 1
        while j < n and t[j] in WS:
            j += 1
        if j < n and t[j] == '"':
            end = scan_quoted(t, j)
        else:
            end = j
            while end < n and t[end] not in ", \t":
                end += 1
            if end == j:
                raise BadRequest("Empty authentication parameter")
        params.append((name, t[j:end]))
        k = end
        while k < n and t[k] in WS:
            k += 1
        if k < n:
            if t[k] != ",":
                raise BadRequest("Junk in authentication parameters")
            k += 1
        i = k
    return AuthValue(scheme, tuple(params))
