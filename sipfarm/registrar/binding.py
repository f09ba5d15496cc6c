"""A binding: one contact address of an address-of-record (RFC 3261 §10, RFC 3327, RFC 5626).

A location table holds one per registered contact, so it is small: a NamedTuple
(a tuple of 11 references), the Contact URI kept as the text the UA wrote and
compared through :func:`contact_key` only when the texts differ.
"""

from __future__ import annotations

from typing import NamedTuple

from ..actions import Source
from ..sip.uri import SipUri, Uri

__all__ = ["Binding", "ContactKey", "contact_key"]


class Binding(NamedTuple):
    """One registered contact of an AOR.

    - ``contact``: the Contact URI as the UA wrote it (without ``<>`` and header params);
    - ``q``: the ``q`` parameter, None when absent (RFC 3261 §20.10);
    - ``expires_at``: wall-clock second it lapses; ``registered_at``: when last written;
    - ``call_id``, ``cseq``: of the REGISTER that wrote it (§10.3 step 7);
    - ``path``: the Path values of that REGISTER, in order (RFC 3327 §5.3);
    - ``source``: the flow it came over, for reaching a TCP/TLS contact (RFC 5626 §5.3);
    - ``instance``, ``reg_id``: ``+sip.instance`` and ``reg-id`` (RFC 5626 §6);
      ``reg_id`` is set only when outbound applied, so ``reg_id is not None``
      marks an outbound binding, keyed by ``(instance, reg_id)``.
    """

    contact: str
    q: float | None
    expires_at: float
    call_id: str
    cseq: int
    path: tuple[str, ...]
    source: Source
    instance: str | None = None
    reg_id: int | None = None
    registered_at: float = 0.0

    def remaining(self, now: float) -> int:
        """Whole seconds left at ``now``, rounded, at least 1 while unexpired (0 after)."""
        left = self.expires_at - now
        if left <= 0:
            return 0
        return max(1, int(left + 0.5))


#: URI parameters that make two SIP URIs differ when only one has them (RFC 3261 §19.1.4).
_SIGNIFICANT = frozenset({"transport", "user", "ttl", "method", "maddr"})

ContactKey = tuple[object, ...]


def contact_key(uri: Uri) -> ContactKey:
    """What two Contact URIs must share to be equal: RFC 3261 §19.1.4, simplified.

    SIP/SIPS: scheme, user and password (case-sensitive, escapes decoded), host
    (case-insensitive), port (absent is not 5060), and the ``transport``, ``user``,
    ``ttl``, ``method`` and ``maddr`` parameters (values case-insensitive).  Other
    parameters and URI headers are ignored: §19.1.4 compares a parameter present in
    both URIs, which no key (an equivalence) can express.  Other schemes: the
    scheme (case-insensitive) and the rest as written.
    """
    if type(uri) is SipUri:
        params = uri.params
        sig: tuple[tuple[str, str], ...] = ()
        if params:
            sig = tuple(
                sorted(
                    (k.lower(), (v or "").lower()) for k, v in params if k.lower() in _SIGNIFICANT
                )
            )
        return (uri.scheme.lower(), uri.user, uri.password, uri.host.lower(), uri.port, sig)
    text = str(uri)
    scheme, _, rest = text.partition(":")
    return (scheme.lower(), rest)
