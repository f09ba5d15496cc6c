"""The farm router's decision: which member handles a packet (sans-IO; DESIGN.md "Ownership").

Any member takes any packet from the balancer; :func:`place` says whether it is
this member's work or another's, from what :func:`sipfarm.sip.peek` read and
the current view of the farm.  The edge relays what belongs elsewhere over the
cluster link and never relays a packet that was relayed to it.

Rules, in order:

1. A **response** belongs to the member named in its top Via branch, when that
   Via is the farm's (its sent-by is the farm's address: another UA's branch
   may look like ours).  When that member is gone, rule 4 places it: the member
   that took over its work (the retransmissions of its requests went there).
2. A request with a **Route** that names a member (``member=`` in the farm's
   Record-Route), or failing that a **Request-URI** that names one, belongs to
   that member: in-dialog requests and requests to a task.  Except an **ACK**
   on that route set: it is the ACK of a 2xx, which RFC 3261 makes end to end
   (§13.2.2.4, §17.1.1.3: no proxy transaction takes it) and every member
   forwards alike by loose routing, so it is forwarded where it lands.  The
   one ACK on a route set that a transaction waits for, that of a non-2xx
   answer to a re-INVITE, has that INVITE's branch; the edge that relayed the
   re-INVITE sends it the same way (``Farm._reinvites``).
3. An **ACK** whose To-tag carries a member token belongs to that member (the
   ACK of a response that member made itself), except the ACK of a *stateless*
   answer (:func:`~sipfarm.ownership.stateless_tag`: a challenge, a 404 …): no
   transaction waits for it, so it is absorbed wherever it lands.
4. Anything else (a new request, a CANCEL, a retransmission without a token)
   belongs to the **owner of its Call-ID** on the ring of ready members.  During
   a view change, a packet the member has no state for goes to its owner
   under the previous view when that member is still alive, for as long as a
   transaction can live (64*T1): the INVITE it CANCELs, or whose retransmission
   it is, is there.  A new INVITE only for INVITE_HANDOFF, and never to a
   drained member: its retransmissions stop at our 100 Trying, a joining member
   should get calls at once, and a drained one none.

Before rule 4 relays a new request, the farm edge lets the member it landed on
answer it when that answer is stateless and the same from every member: the
challenge of a REGISTER or a call sent without credentials, a 403/404 for its
domain or account (``SipCore.gate``).  No work is placed by it, and the retry
with credentials is placed by rule 4 like any new request; half the relays of an
authenticated call through two members were the challenged INVITE and its ACK.

A token that names no live member is ignored (its work died with it); the
next rule decides.

Decision written down: the edge places a REGISTER by its **AOR** (the To URI,
``key=``), not by its Call-ID, and without the hand-off window.  The binding
lives with the AOR's owner, so the owner itself runs the registrar: a save is a
local write (to memory and to the account's storage), not a call over the
cluster link, and two REGISTERs of one AOR from two phones (two Call-IDs) never
race on two members.  A REGISTER has no server transaction to hand off (a
retransmission is answered again), and the previous owner must not write an
AOR its successor may already have loaded.
"""

from __future__ import annotations

from typing import NamedTuple

from cluster.ring import Ring

from .ownership import is_stateless_tag, token_of_branch, token_of_tag, token_of_uri
from .sip.peek import Peek

__all__ = ["HANDOFF", "INVITE_HANDOFF", "View", "place"]

#: The hand-off window after a view change: as long as a transaction can live (64*T1).
HANDOFF = 32.0
#: The window for a new INVITE: the caller retransmits it only until our 100 Trying
#: reaches it (a proxy answers 100 at once, RFC 3261 §16.2), so after a few seconds a
#: new INVITE is new work, placed on the new ring; a new member gets calls at once.
INVITE_HANDOFF = 4.0


class View(NamedTuple):
    """What the router knows of the farm: who it is, who lives, who takes new work."""

    me: str
    live: frozenset[str]  # every member with a lease (ready, joining or draining)
    ring: Ring  # the ready members: owners of new work
    farm: frozenset[bytes] = frozenset()  # the farm's sent-by values (VIP host:port …)
    previous: Ring | None = None  # the ring before the last change …
    handoff_until: float = 0.0  # … consulted until then


def _live(token: str | None, view: View) -> str | None:
    return token if token is not None and token in view.live else None


def place(
    peek: Peek,
    view: View,
    now: float,
    *,
    has_state: bool = False,
    key: bytes | None = None,
    handoff: bool = True,
) -> str | None:
    """The token of the member whose work ``peek`` is; None when it is this member's.

    ``has_state``: this member already holds a transaction for the packet (the
    edge looked); then it keeps it, whatever the view says.  ``key`` replaces
    the Call-ID of rule 4 (the AOR of a REGISTER), and ``handoff=False`` leaves
    the previous view out of it.
    """
    if has_state:
        return None
    if peek.status is not None:  # 1. a response
        if peek.sent_by is None or peek.sent_by.lower() not in view.farm:
            return None  # not ours to relay: the member answers or drops it itself
        token = token_of_branch(peek.branch)
        owner = _live(token, view)
        if owner is None and token is None:
            return None
        # (a member that is gone: to the one that took its transactions over, rule 4)
    else:
        # 2. Route / Request-URI naming a member
        route = token_of_uri(peek.route)
        if route is not None and peek.method == b"ACK":
            return None
        owner = _live(route, view) or _live(token_of_uri(peek.request_uri), view)
        if owner is None and peek.method == b"ACK":  # 3.
            if is_stateless_tag(peek.to_tag):
                return None
            owner = _live(token_of_tag(peek.to_tag), view)
    if owner is None:  # 4. the Call-ID's owner
        if key is None:
            key = peek.call_id or b""
        owner = view.ring.owner(key)
        previous = view.previous
        if handoff and previous is not None and now < view.handoff_until:
            before = _live(previous.owner(key), view)
            if before is not None and before != owner:
                new_invite = peek.method == b"INVITE" and peek.to_tag is None
                if not new_invite or (
                    before in view.ring  # a drained member takes no new call
                    and now < view.handoff_until - HANDOFF + INVITE_HANDOFF
                ):
                    owner = before
    if owner is None or owner == view.me:
        return None
    return owner
