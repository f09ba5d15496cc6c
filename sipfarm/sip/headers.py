"""The header registry and the header list of a message (RFC 3261 §7.3, §20).

Every header field is kept as written (name, value with folding undone, and the
raw line), in order, so unknown headers round-trip byte for byte.  Lookups go
through :func:`key`, which maps compact forms (RFC 3261 §7.3.3 and the
extensions' own) and any capitalisation to one canonical key.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

from .grammar import split_comma

__all__ = ["CANONICAL", "COMPACT", "SINGLE", "HeaderField", "Headers", "key"]

#: canonical spelling of every header the core knows, by lower-case key.
CANONICAL: dict[str, str] = {
    n.lower(): n
    for n in (
        "Accept",
        "Accept-Contact",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Authentication-Info",
        "Authorization",
        "Call-ID",
        "Call-Info",
        "Contact",
        "Content-Disposition",
        "Content-Encoding",
        "Content-Language",
        "Content-Length",
        "Content-Type",
        "CSeq",
        "Date",
        "Error-Info",
        "Event",
        "Expires",
        "From",
        "Identity",
        "Identity-Info",
        "In-Reply-To",
        "Max-Forwards",
        "MIME-Version",
        "Min-Expires",
        "Min-SE",
        "Organization",
        "Path",
        "Priority",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Require",
        "RAck",
        "Reason",
        "Record-Route",
        "Refer-To",
        "Referred-By",
        "Reject-Contact",
        "Replaces",
        "Reply-To",
        "Request-Disposition",
        "Require",
        "Retry-After",
        "Route",
        "RSeq",
        "Server",
        "Session-Expires",
        "SIP-ETag",
        "SIP-If-Match",
        "Subject",
        "Subscription-State",
        "Supported",
        "Timestamp",
        "To",
        "Unsupported",
        "User-Agent",
        "Via",
        "Warning",
        "WWW-Authenticate",
    )
}

#: compact forms: RFC 3261 §7.3.3 and the RFCs that added letters.
COMPACT: dict[str, str] = {
    "a": "accept-contact",  # RFC 3841
    "b": "referred-by",  # RFC 3892
    "c": "content-type",
    "d": "request-disposition",  # RFC 3841
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",  # RFC 3841
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",  # RFC 4474
    "o": "event",  # RFC 6665
    "r": "refer-to",  # RFC 3515
    "s": "subject",
    "t": "to",
    "u": "allow-events",  # RFC 6665
    "v": "via",
    "x": "session-expires",  # RFC 4028
    "y": "identity",  # RFC 4474
}

#: headers that may appear once only (RFC 3261 §7.3.1: not a comma list).
SINGLE = frozenset(
    {
        "call-id",
        "content-length",
        "content-type",
        "cseq",
        "expires",
        "from",
        "max-forwards",
        "min-expires",
        "to",
        "mime-version",
        "rack",
        "rseq",
        "subscription-state",
        "event",
    }
)


def key(name: str) -> str:
    """The registry key of a header name: lower case, compact forms expanded."""
    lname = name.lower()
    return COMPACT.get(lname, lname) if len(lname) == 1 else lname


def canonical(name: str) -> str:
    """The canonical spelling of ``name`` (unknown names are kept as written)."""
    return CANONICAL.get(key(name), name)


class HeaderField(NamedTuple):
    """One header line: ``name`` as written, ``value`` unfolded and stripped, ``raw`` line(s).

    ``raw`` is '' for a field built in code; a parsed field is written back as ``raw``.
    """

    name: str
    value: str
    raw: str = ""

    def __str__(self) -> str:
        return self.raw or f"{self.name}: {self.value}"


class Headers:
    """The ordered header fields of a message; immutable, edits return a new list.

    Lookups take any spelling of a name (``"Call-ID"``, ``"call-id"``, ``"i"``);
    the ``*_key`` variants take a registry key as :func:`key` returns it and
    skip that step (the parser's own hot path).  The index is built on the
    first lookup, so a list built only to be sent never pays for it.
    """

    __slots__ = ("_fields", "_index")

    def __init__(self, fields: Iterable[HeaderField] = ()):
        self._fields: tuple[HeaderField, ...] = tuple(fields)
        self._index: dict[str, list[int]] | None = None

    @classmethod
    def _from_parsed(cls, fields: tuple[HeaderField, ...], index: dict[str, list[int]]) -> Headers:
        h = cls.__new__(cls)
        h._fields = fields
        h._index = index
        return h

    @classmethod
    def of(cls, *pairs: tuple[str, str]) -> Headers:
        return cls(HeaderField(n, v) for n, v in pairs)

    def _idx(self) -> dict[str, list[int]]:
        index = self._index
        if index is None:
            index = {}
            for i, f in enumerate(self._fields):
                index.setdefault(key(f[0]), []).append(i)
            self._index = index
        return index

    def __iter__(self) -> Iterator[HeaderField]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.has_key(key(name))

    def has_key(self, k: str) -> bool:
        return k in (self._index if self._index is not None else self._idx())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return [(key(f.name), f.value) for f in self._fields] == [
                (key(f.name), f.value) for f in other._fields
            ]
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def count(self, name: str) -> int:
        return len((self._index if self._index is not None else self._idx()).get(key(name), ()))

    def get_all(self, name: str) -> list[str]:
        """The value of every line of header ``name``, in order."""
        return self.get_all_key(key(name))

    def get_all_key(self, k: str) -> list[str]:
        idx = (self._index if self._index is not None else self._idx()).get(k)
        if idx is None:
            return []
        fields = self._fields
        return [fields[i][1] for i in idx]

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of the first line of header ``name``."""
        idx = (self._index if self._index is not None else self._idx()).get(key(name))
        return self._fields[idx[0]][1] if idx else default

    def get_key(self, k: str) -> str | None:
        idx = (self._index if self._index is not None else self._idx()).get(k)
        return self._fields[idx[0]][1] if idx else None

    def fields(self, name: str) -> list[HeaderField]:
        return self.fields_key(key(name))

    def fields_key(self, k: str) -> list[HeaderField]:
        idx = (self._index if self._index is not None else self._idx()).get(k)
        if idx is None:
            return []
        fields = self._fields
        return [fields[i] for i in idx]

    def values(self, name: str) -> list[str]:
        """Every element of a comma-list header, across all its lines (RFC 3261 §7.3.1)."""
        out: list[str] = []
        for v in self.get_all(name):
            out.extend(split_comma(v))
        return out

    def tokens(self, name: str) -> list[str]:
        """The option tags / methods of Require, Supported, Allow …, in order."""
        return [v for line in self.get_all(name) for v in (t.strip() for t in line.split(",")) if v]

    # -- edits (each returns a new list) --------------------------------------------------

    def prepend(self, name: str, value: str) -> Headers:
        return Headers((HeaderField(name, value), *self._fields))

    def append(self, name: str, value: str) -> Headers:
        return Headers((*self._fields, HeaderField(name, value)))

    def remove(self, name: str) -> Headers:
        k = key(name)
        return Headers(f for f in self._fields if key(f.name) != k)

    def replace_at(self, position: int, value: str) -> Headers:
        """Replace the field at ``position`` (an index into the list) with a new value."""
        fields = list(self._fields)
        fields[position] = HeaderField(fields[position].name, value)
        return Headers._from_parsed(tuple(fields), self._idx())

    def position(self, name: str) -> int | None:
        idx = (self._index if self._index is not None else self._idx()).get(key(name))
        return idx[0] if idx else None

    def set(self, name: str, value: str) -> Headers:
        """Replace every line of ``name`` with one line (appended if absent)."""
        pos = self.position(name)
        if pos is None:
            return self.append(name, value)
        k = key(name)
        out = []
        for i, f in enumerate(self._fields):
            if i == pos:
                out.append(HeaderField(f.name, value))
            elif key(f.name) != k:
                out.append(f)
        return Headers(out)

    def __bytes__(self) -> bytes:
        return "".join([(f[2] or f"{f[0]}: {f[1]}") + "\r\n" for f in self._fields]).encode(
            "utf-8", "surrogateescape"
        )

    def __repr__(self) -> str:
        return f"Headers({[(f.name, f.value) for f in self._fields]!r})"
