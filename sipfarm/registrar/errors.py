"""The registrar's refusals (RFC 3261 §10.3, §21), raised inside a decision and answered by it.

They extend the one table of :mod:`sipfarm.sip.errors` with the answers only a
registrar gives; :meth:`~sipfarm.registrar.registrar.Registrar.register` turns each
into its response, so none of them leaves the registrar.
"""

from __future__ import annotations

from ..sip.errors import SipError

__all__ = ["IntervalTooBrief", "OutOfOrder", "TooManyContacts"]


class IntervalTooBrief(SipError):
    """423: a non-zero expiry below the minimum; carries Min-Expires (RFC 3261 §10.3 step 6)."""

    status = 423
    default_reason = "Interval Too Brief"

    def __init__(self, min_expires: int):
        super().__init__(headers=(("Min-Expires", str(min_expires)),))
        self.min_expires = min_expires


class OutOfOrder(SipError):
    """500: same Call-ID as a binding and a lower CSeq (RFC 3261 §10.3 step 7).

    §10.3 only says the update "MUST be aborted and the request fails"; the status is
    the one §12.2.2 gives an out-of-order request inside a dialog.
    """

    status = 500
    default_reason = "Out of Order"


class TooManyContacts(SipError):
    """403: the request would leave the AOR with more bindings than allowed.

    A policy limit, so 403 (§21.4.4: do not retry) rather than Kamailio's 503, which
    invites a retry and a failover to another server (RFC 3263 §4.3) that answers the same.
    """

    status = 403
    default_reason = "Too Many Registered Contacts"
