"""Foldering methods and the layout choices of a store and of a domain (pure).

The seed ("CommuniGate Shared File System structure and settings") stores many
accounts (or domains) under sub-directories named after the first letters of
their names::

    SharedDomains/company.com/j.sub/jsmith.macnt/          method 1
    SharedDomains/company.com/j.sub/s.sub/jsmith.macnt/    method 1/1
    SharedDomains/company.com/js.sub/m.sub/jsmith.macnt/   method 2/1

A **method** is ``none`` or one to `MAX_LEVELS` numbers separated by ``/``; each
number (1 to `MAX_LETTERS`) is how many letters of the name, following the ones
the levels before it took, name that level's folder ``<letters>.sub``.  Letters
are characters (code points of the NFC name that `mail.names` makes), never
bytes, so ``élodie`` under method 1 lives in ``é.sub``.  Two rules make every
name fit every method:

- a name shorter than the method needs is padded with `PAD` (``_``): ``j`` under
  method 2/1 lives in ``j_.sub/_.sub/j.macnt``;
- a ``.`` of the name is written `PAD` too, so that no folder starts with ``.``
  (hidden from ``ls`` and shell globs; ``j.smith`` under 1/1 is ``j.sub/_.sub``).

A folder element is at most ``MAX_LETTERS * 4 + 4`` bytes of UTF-8 (36), far
under the 255 bytes a Linux file name may have.  Folders never decide who an
account is: its name is the last element (``<name>.macnt``), so two names never
share an account directory whatever their folders.

`StoreShape` (the store's domain foldering) and `DomainShape` (a domain's account
foldering and fast storage index) are what the settings files hold, with the
shape a move started from while the move runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

FOLDER_SUFFIX = ".sub"
PAD = "_"
MAX_LEVELS = 8
MAX_LETTERS = 8
#: The fast storage index is a count of path elements; more than this is a typo.
MAX_FAST = 64


class BadLayout(ValueError):
    """A foldering method or fast storage index that is not one (or not for this tree)."""


@dataclass(frozen=True, slots=True)
class Method:
    """A foldering method: how many letters name each folder level (``()`` is none)."""

    levels: tuple[int, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Method:
        """``none``, ``1``, ``2``, ``1/1``, ``2/1``, ``1/1/1`` …, or raise `BadLayout`."""
        if text == "none":
            return cls()
        parts = text.split("/")
        if len(parts) > MAX_LEVELS or not all(
            p.isascii() and p.isdigit() and 1 <= int(p) <= MAX_LETTERS for p in parts
        ):
            raise BadLayout(
                f"bad foldering method {text!r}: 'none', or 1 to {MAX_LEVELS} numbers "
                f"of letters (1 to {MAX_LETTERS}) separated by '/', like 1, 2, 1/1, 2/1"
            )
        return cls(tuple(int(p) for p in parts))

    def __str__(self) -> str:
        return "/".join(str(n) for n in self.levels) if self.levels else "none"

    def folders(self, name: str) -> tuple[str, ...]:
        """The folder elements above ``name`` (``("js.sub", "m.sub")`` for jsmith, 2/1)."""
        out = []
        start = 0
        for n in self.levels:
            letters = name[start : start + n].ljust(n, PAD).replace(".", PAD)
            out.append(letters + FOLDER_SUFFIX)
            start += n
        return tuple(out)

    def pattern(self) -> tuple[str, ...]:
        """The glob element of each folder level."""
        return ("*" + FOLDER_SUFFIX,) * len(self.levels)


NONE = Method()


@dataclass(frozen=True, slots=True)
class Shape:
    """Where one account's files are: the store's domain foldering, its domain's choices."""

    domain_foldering: Method = NONE
    account_foldering: Method = NONE
    fast: int = 0


def fast_index(text: str) -> int:
    """A fast storage index as typed: 0 (off) to `MAX_FAST`, or raise `BadLayout`."""
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_FAST:
        raise BadLayout(f"bad fast storage index {text!r}: 0 (off) to {MAX_FAST}")
    return int(text)


def check_fast(fast: int, domain_foldering: Method, account_foldering: Method) -> None:
    """Raise `BadLayout` unless ``fast`` names an element before ``<account>.macnt``.

    The elements counted are the seed's, from the base directory: ``SharedDomains``
    is 1, then the domain folders, the domain, the account folders.
    """
    elements = 2 + len(domain_foldering.levels) + len(account_foldering.levels)
    if not 0 <= fast <= elements:
        raise BadLayout(
            f"fast storage index {fast} is past the account's folders: with domain "
            f"foldering {domain_foldering} and account foldering {account_foldering} "
            f"it is 0 (off) to {elements}"
        )


def _parse_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadLayout(f"{what}: not UTF-8 JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise BadLayout(f"{what}: not a JSON object")
    return obj


def _method(obj: dict[str, Any], key: str, what: str) -> Method:
    value = obj.pop(key, "none")
    if not isinstance(value, str):
        raise BadLayout(f"{what}: {key} is not a method")
    return Method.parse(value)


def _fast(obj: dict[str, Any], key: str, what: str) -> int:
    value = obj.pop(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_FAST:
        raise BadLayout(f"{what}: bad {key}")
    return value


def _dump(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, sort_keys=True, ensure_ascii=False, indent=1) + "\n").encode()


@dataclass(frozen=True, slots=True)
class StoreShape:
    """``SharedDomains.settings``: the domain foldering, and the one a move started from."""

    domain_foldering: Method = NONE
    moving_from: Method | None = None
    other: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def parse(cls, data: bytes) -> StoreShape:
        what = "store settings"
        obj = _parse_object(data, what)
        foldering = _method(obj, "domain_foldering", what)
        moving = obj.pop("moving_from", None)
        previous = None
        if moving is not None:
            if not isinstance(moving, dict):
                raise BadLayout(f"{what}: moving_from is not an object")
            previous = _method(dict(moving), "domain_foldering", what)
        return cls(foldering, previous, obj)

    def __bytes__(self) -> bytes:
        obj = {**self.other, "domain_foldering": str(self.domain_foldering)}
        if self.moving_from is not None:
            obj["moving_from"] = {"domain_foldering": str(self.moving_from)}
        return _dump(obj)


@dataclass(frozen=True, slots=True)
class DomainShape:
    """``domain.settings``: account foldering and fast index, and those a move started from."""

    account_foldering: Method = NONE
    fast: int = 0
    moving_from: tuple[Method, int] | None = None
    other: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def parse(cls, data: bytes) -> DomainShape:
        what = "domain settings"
        obj = _parse_object(data, what)
        foldering = _method(obj, "account_foldering", what)
        fast = _fast(obj, "fast_storage", what)
        moving = obj.pop("moving_from", None)
        previous = None
        if moving is not None:
            if not isinstance(moving, dict):
                raise BadLayout(f"{what}: moving_from is not an object")
            moving = dict(moving)
            previous = (
                _method(moving, "account_foldering", what),
                _fast(moving, "fast_storage", what),
            )
        return cls(foldering, fast, previous, obj)

    def __bytes__(self) -> bytes:
        obj = {
            **self.other,
            "account_foldering": str(self.account_foldering),
            "fast_storage": self.fast,
        }
        if self.moving_from is not None:
            method, fast = self.moving_from
            obj["moving_from"] = {"account_foldering": str(method), "fast_storage": fast}
        return _dump(obj)

    @property
    def is_default(self) -> bool:
        return self == DomainShape() and not self.other


def shapes(store: StoreShape, domain: DomainShape) -> tuple[Shape, ...]:
    """Every shape an account of ``domain`` may be in, the current one first.

    Outside a move that is one shape.  While one runs, the mover takes the domain
    directory, the account directory and the fast files from the old shape to the
    new one as separate steps, so every mix of old and new is a place to look.
    """
    dfs = [store.domain_foldering]
    if store.moving_from is not None and store.moving_from != store.domain_foldering:
        dfs.append(store.moving_from)
    afs = [domain.account_foldering]
    fasts = [domain.fast]
    if domain.moving_from is not None:
        if domain.moving_from[0] != domain.account_foldering:
            afs.append(domain.moving_from[0])
        if domain.moving_from[1] != domain.fast:
            fasts.append(domain.moving_from[1])
    return tuple(Shape(d, a, f) for d in dfs for a in afs for f in fasts)
