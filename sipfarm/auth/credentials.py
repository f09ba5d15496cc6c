"""Reading one credentials value into its parameters (RFC 3261 §25.1, RFC 7616 §3.4).

:func:`sipfarm.sip.parse_auth` is the reference reader.  It walks the value one
character at a time, which costs more than the whole digest check on the
registration hot path, so :func:`read_credentials` first tries a reader built on
``str.split`` for the shape every UA sends (``Digest name="value", name=token, …``,
no quoted-pairs, tokens that are ASCII letters and digits) and hands anything else
to the reference, whose answer or ``BadRequest`` it returns.  Where the fast reader
answers, it answers what the reference does (a property test holds it to that).
"""

from __future__ import annotations

from sipfarm.sip import parse_auth
from sipfarm.sip.errors import BadRequest
from sipfarm.sip.grammar import unquote

__all__ = ["read_credentials"]


def read_credentials(text: str) -> tuple[str, dict[str, str]]:
    """``(scheme, {lower-case name: unquoted value})`` of one Authorization value.

    Raises :class:`~sipfarm.sip.errors.BadRequest` when the value is broken or
    names a parameter twice (RFC 7616 §3.4: each at most once).
    """
    fast = _fast(text)
    if fast is not None:
        return fast
    value = parse_auth(text)
    out = {k.lower(): unquote(v) for k, v in value.params}
    if len(out) != len(value.params):
        raise BadRequest("Duplicate authentication parameter")
    return value.scheme, out


#: Stands in for a quoted-string while the rest is split at commas (refused in input).
_QUOTED = "\x00"


def _fast(text: str) -> tuple[str, dict[str, str]] | None:
    """The common shape, read with C-level splits; None for anything else.

    Split at the quotes first (no quoted-pairs, so every ``"`` delimits), then the
    text outside the quotes, each quoted-string replaced by one placeholder, at commas.
    """
    t = text.strip(" \t")
    scheme, sp, rest = t.partition(" ")
    if not sp or "\\" in rest or _QUOTED in rest or not (scheme.isascii() and scheme.isalnum()):
        return None
    segments = rest.split('"')
    if not len(segments) & 1:  # an unterminated quoted-string
        return None
    quoted = iter(segments[1::2])
    out: dict[str, str] = {}
    for item in _QUOTED.join(segments[0::2]).split(","):
        name, eq, value = item.strip(" \t").partition("=")
        if not eq or not (name.isascii() and name.isalnum()):
            return None
        if value == _QUOTED:
            value = next(quoted)
        elif not value or _QUOTED in value or " " in value or "\t" in value:
            return None
        name = name.lower()
        if name in out:  # the reference says what is wrong
            return None
        out[name] = value
    return scheme, out
