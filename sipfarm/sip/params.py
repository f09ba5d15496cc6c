"""Parameters: ``;name=value`` lists of URIs and header fields (RFC 3261 §19.1.1, §25.1).

:class:`Params` keeps every parameter in its order with the name and value as
written, so that unknown parameters serialise back byte for byte; lookups are
case-insensitive on the name, as the grammar says.
"""

from __future__ import annotations

from typing import Any

from .errors import BadRequest
from .grammar import TOKEN, WS, scan_quoted, unescape

__all__ = ["Params", "parse_header_params", "parse_uri_params"]


class Params(tuple[tuple[str, str | None], ...]):
    """An ordered, immutable list of ``(name, value)``; ``value`` is ``None`` for a flag.

    A tuple of pairs (built in C, so parsing stays cheap) that also answers
    by name: ``params["tag"]``, ``params.get("tag")``, ``"lr" in params``.
    """

    __slots__ = ()

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of the first parameter called ``name`` ('' for a flag)."""
        if not name.islower():
            name = name.lower()
        for k, v in self:  # names are nearly always written in lower case: fold the others
            if k == name or (not k.islower() and k.lower() == name):
                return "" if v is None else v
        return default

    def __getitem__(self, name: Any) -> Any:
        if not isinstance(name, str):
            return tuple.__getitem__(self, name)
        lname = name.lower()
        for k, v in self:
            if k.lower() == lname:
                return v
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return tuple.__contains__(self, name)
        lname = name.lower()
        return any(k.lower() == lname for k, _ in self)

    def set(self, name: str, value: str | None) -> Params:
        """A copy with ``name`` set to ``value`` (replacing in place, or appended)."""
        lname = name.lower()
        out = []
        done = False
        for k, v in self:
            if k.lower() == lname:
                if not done:
                    out.append((k, value))
                    done = True
            else:
                out.append((k, v))
        if not done:
            out.append((name, value))
        return Params(out)

    def remove(self, name: str) -> Params:
        lname = name.lower()
        return Params((k, v) for k, v in self if k.lower() != lname)

    def __str__(self) -> str:
        return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self)

    def __repr__(self) -> str:
        return f"Params({tuple(self)!r})"


EMPTY = Params()

try:  # the C typed parsers (sipfarm.sip._speedups) build Params as this module does
    from ._speedups import configure as _configure_c  # type: ignore[import-not-found]
except ImportError:  # built without a C compiler
    pass
else:
    _configure_c(params=Params, empty_params=EMPTY)

# paramchar = param-unreserved / unreserved / escaped (RFC 3261 §25.1)
_URI_PARAM_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    "-_.!~*'()"  # mark
    "[]/:&+$"  # param-unreserved
    "%"
)


def parse_uri_params(text: str) -> Params:
    """``text`` is what follows the first ';' of a URI's parameters: ``a=b;c;d=e``.

    Escapes are decoded once (RFC 3261 §19.1.2), so ``;%6C%72`` is ``lr``; the
    URI keeps its text for serialising.
    """
    items: list[tuple[str, str | None]] = []
    for part in text.split(";"):
        name, eq, value = part.partition("=")
        if not name or not _URI_PARAM_CHARS.issuperset(name):
            raise BadRequest("Bad URI parameter")
        if "%" in name:
            name = unescape(name, "URI parameter")
        if eq:
            if not value or not _URI_PARAM_CHARS.issuperset(value):
                raise BadRequest("Bad URI parameter value")
            if "%" in value:
                value = unescape(value, "URI parameter")
            items.append((name, value))
        else:
            items.append((name, None))
    return Params(items)


def _check_name(name: str) -> str:
    if not name or not TOKEN.issuperset(name):
        raise BadRequest("Bad header parameter")
    return name


def _check_value(value: str) -> str:
    if not value:
        raise BadRequest("Empty header parameter value")
    if value[0] == '"':
        if scan_quoted(value, 0) != len(value):
            raise BadRequest("Bad quoted parameter value")
        return value
    # gen-value = token / host / quoted-string; host allows '[' ':' ']' for IPv6.
    if not TOKEN.issuperset(value) and not _HOSTISH.issuperset(value):
        raise BadRequest("Bad header parameter value")
    return value


_HOSTISH = frozenset(TOKEN | set("[]:"))


def parse_header_params(text: str) -> Params:
    """Header parameters: ``text`` starts just after a ';' (RFC 3261 §25.1 generic-param).

    SEMI and EQUAL allow whitespace on either side; values are token, host or
    quoted-string.
    """
    items: list[tuple[str, str | None]] = []
    if '"' not in text:
        for part in text.split(";"):
            name, eq, value = part.partition("=")
            name = _check_name(name.strip(WS))
            if eq:
                items.append((name, _check_value(value.strip(WS))))
            else:
                items.append((name, None))
        return Params(items)
    i = 0
    n = len(text)
    while True:
        j = i
        while j < n and text[j] not in ";=":
            j += 1
        name = _check_name(text[i:j].strip(WS))
        if j < n and text[j] == "=":
            k = j + 1
            while k < n and text[k] in WS:
                k += 1
            if k < n and text[k] == '"':
                end = scan_quoted(text, k)
                value = text[k:end]
                rest = text[end:].lstrip(WS)
                if rest and rest[0] != ";":
                    raise BadRequest("Junk after quoted parameter value")
                j = n - len(rest)
            else:
                end = text.find(";", k)
                if end < 0:
                    end = n
                value = _check_value(text[k:end].strip(WS))
                j = end
            items.append((name, value))
        else:
            items.append((name, None))
        if j >= n:
            break
        i = j + 1
    return Params(items)
