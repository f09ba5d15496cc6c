"""Character classes and small lexical helpers of the SIP grammar (RFC 3261 §25.1).

Everything here works on ``str`` (header bytes are decoded once, as UTF-8 with
``surrogateescape`` so that any byte survives a round trip).
"""

from __future__ import annotations

import re

from .errors import BadRequest

__all__ = [
    "TOKEN",
    "WS",
    "is_token",
    "quote",
    "split_comma",
    "unescape",
    "unquote",
]

ALPHANUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
#: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN = frozenset(ALPHANUM + "-.!%*_+`'~")
#: WSP = SP / HTAB (RFC 5234); LWS once folding has been undone is 1*WSP.
WS = " \t"

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
_ESCAPED_RE = re.compile(r"%([0-9A-Fa-f]{2})")
_BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def is_token(text: str) -> bool:
    """True when ``text`` is a non-empty RFC 3261 token."""
    return _TOKEN_RE.match(text) is not None


def unescape(text: str, what: str = "URI") -> str:
    """Decode ``%HH`` escapes (RFC 3261 §19.1.2, RFC 3986 §2.1).

    The decoded bytes are read as UTF-8 with ``surrogateescape``, so that an
    escaped NUL or a non-UTF-8 octet is kept and compares as itself.
    """
    if "%" not in text:
        return text
    if _BAD_ESCAPE_RE.search(text):
        raise BadRequest(f"Bad escape in {what}")
    raw = text.encode("utf-8", "surrogateescape")
    out = bytearray()
    i = 0
    n = len(raw)
    while i < n:
        c = raw[i]
        if c == 0x25:  # '%'
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(c)
            i += 1
    return out.decode("utf-8", "surrogateescape")


def unquote(text: str) -> str:
    """The content of a quoted-string, with quoted-pairs undone (RFC 3261 §25.1).

    A value that is not quoted is returned as it is.
    """
    if len(text) < 2 or text[0] != '"':
        return text
    if text[-1] != '"':
        raise BadRequest("Unterminated quoted-string")
    inner = text[1:-1]
    if "\\" not in inner:
        return inner
    out: list[str] = []
    i = 0
    while i < len(inner):
        c = inner[i]
        if c == "\\":
            if i + 1 >= len(inner):
                raise BadRequest("Bad quoted-pair")
            out.append(inner[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def quote(text: str) -> str:
    """``text`` as a quoted-string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def scan_quoted(text: str, start: int) -> int:
    """Index just past the quoted-string that opens at ``text[start] == '"'``."""
    i = start + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
        elif c == '"':
            return i + 1
        else:
            i += 1
    raise BadRequest("Unterminated quoted-string")


def split_comma(text: str) -> list[str]:
    """Split a header value into its comma-separated elements (RFC 3261 §7.3.1).

    Commas inside quoted-strings and inside ``<…>`` do not split.  Elements are
    stripped of surrounding whitespace; an empty element is a syntax error.
    """
    if '"' not in text and "<" not in text:
        parts = text.split(",")
    else:
        parts = []
        start = 0
        i = 0
        n = len(text)
        while i < n:
            c = text[i]
            if c == '"':
                i = scan_quoted(text, i)
                continue
            if c == "<":
                end = text.find(">", i)
                if end < 0:
                    raise BadRequest("Unbalanced '<' in header value")
                i = end + 1
                continue
            if c == ",":
                parts.append(text[start:i])
                start = i + 1
            i += 1
        parts.append(text[start:])
    out = []
    for p in parts:
        p = p.strip(WS)
        if not p:
            raise BadRequest("Empty element in header list")
        out.append(p)
    return out
