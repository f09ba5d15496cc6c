"""Membership on etcd (asyncio edge): a lease, a key, a watch (DESIGN.md "Cluster").

A member holds a lease (TTL ``ttl``, about 2 s, refreshed three times per TTL)
and writes ``<prefix><token>`` under it with its cluster address, roles and
state.  It reads the prefix once, then watches it from the next revision, and
folds every event into a :class:`~cluster.membership.View` in revision order
(``on_view`` gets each new view).  A member whose lease ends disappears from
every view at the same revision.

Losing etcd: when no refresh has succeeded for a whole TTL, the lease may be
gone and the view may be stale, so ``on_lost`` is called and :attr:`lost` is
set: the member stops taking new undirected work (the SIP core answers 503)
and leaves its transactions to the others, who count it dead
(sipfarm.farm.Farm._lost).  When a refresh succeeds again it
re-registers and reads the view afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import aetcd
import msgpack

from .membership import (
    Deleted,
    MemberInfo,
    MemberState,
    Put,
    View,
    apply,
    decode_member,
    encode_member,
)

logger = logging.getLogger(__name__)

__all__ = ["EtcdMembership"]

PREFIX = b"sipfarm/members/"


class EtcdMembership:
    """This member's lease and key, and the farm's view as etcd tells it."""

    def __init__(
        self,
        token: str,
        address: tuple[str, int],
        roles: frozenset[str],
        etcd: tuple[str, int],
        on_view: Callable[[View], None],
        *,
        on_lost: Callable[[], None] = lambda: None,
        ttl: int = 2,
        prefix: bytes = PREFIX,
        sip: tuple[str, int] | None = None,
        http: tuple[str, int] | None = None,
    ) -> None:
        self.token = token
        self.address = address
        self.roles = roles
        self.etcd = etcd
        self.on_view = on_view
        self.on_lost = on_lost
        self.ttl = ttl
        self.prefix = prefix
        self.sip = sip
        self.http = http
        self.state = MemberState.JOINING
        self.view = View()
        self.lost = False
        self._client: Any = None
        self._lease: Any = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- life cycle ---------------------------------------------------------------------

    async def start(self, state: MemberState = MemberState.JOINING) -> None:
        """Connect, take a lease, write our key, read and watch the view."""
        self.state = state
        self._client = aetcd.Client(host=self.etcd[0], port=self.etcd[1], timeout=self.ttl)
        await self._register()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._keepalive()), loop.create_task(self._watch())]

    async def set_state(self, state: MemberState) -> None:
        """Publish a new state (ready, not-ready …) under the same lease."""
        self.state = state
        await self._put()

    async def stop(self) -> None:
        """Say goodbye (state gone), end the lease, close."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._client is not None:
            with contextlib.suppress(Exception):
                self.state = MemberState.GONE
                await self._put()
                await self._lease.revoke()
            with contextlib.suppress(Exception):
                await self._client.close()

    def abandon(self) -> None:
        """Stop refreshing without a goodbye (what a crash looks like to the others)."""
        for task in self._tasks:
            task.cancel()

    # -- inside ------------------------------------------------------------------------

    def _member(self, created: int = 0) -> MemberInfo:
        return MemberInfo(
            self.token, self.address, self.roles, self.state, created, self.sip, self.http
        )

    async def _put(self) -> None:
        value = msgpack.packb(encode_member(self._member()), use_bin_type=True)
        await self._client.put(self.prefix + self.token.encode(), value, lease=self._lease)

    async def _register(self) -> None:
        self._lease = await self._client.lease(self.ttl)
        await self._put()
        snapshot = await self._client.get_prefix(self.prefix)
        view = View(revision=0)
        members = {}
        for kv in snapshot:
            token = kv.key[len(self.prefix) :].decode("utf-8", "replace")
            try:
                value = msgpack.unpackb(kv.value, raw=False)
                members[token] = decode_member(token, value, kv.create_revision)
            except (ValueError, msgpack.UnpackException) as exc:
                logger.warning("etcd: member %s unreadable, left out: %s", token, exc)
        view = View(snapshot.header.revision, members)
        self.lost = False
        self._set_view(view)

    def _set_view(self, view: View) -> None:
        if view is self.view:
            return
        self.view = view
        try:
            self.on_view(view)
        except Exception:
            logger.exception("etcd: view handler failed")

    def suspect(self) -> None:
        """The member knows it missed its refreshes (it was frozen): lost until re-registered."""
        if not self.lost:
            self.lost = True
            try:
                self.on_lost()
            except Exception:
                logger.exception("etcd: lost handler failed")

    async def _keepalive(self) -> None:
        """Refresh the lease; once lost (no refresh for a TTL, or the lease ended), register anew.

        A lease that etcd ended while this member was frozen answers a refresh
        with TTL 0, not an error: that is lost at once, whatever the clock says.
        """
        loop = asyncio.get_running_loop()
        last_ok = loop.time()
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                if self.lost:  # a new lease, our key again, the view afresh
                    # Back as joining, not ready: the others put it in their ring only
                    # once it takes work again.  Its key is written before its view is
                    # read back (and ``lost`` cleared), and a ready key in between drew
                    # relayed REGISTERs that it answered 503 (a farm test, link down).
                    # The farm publishes ready once its links are up (Farm._publish).
                    if self.state is MemberState.READY:
                        self.state = MemberState.JOINING
                    await asyncio.wait_for(self._register(), self.ttl)
                    logger.warning("etcd reachable again: member %s re-registered", self.token)
                else:
                    reply = await asyncio.wait_for(self._lease.refresh(), self.ttl / 2)
                    if reply is None or getattr(reply, "TTL", 1) <= 0:
                        logger.warning("etcd: the lease of member %s ended", self.token)
                        self.suspect()
                        continue
                last_ok = loop.time()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self.lost and loop.time() - last_ok > self.ttl:
                    logger.warning("etcd lost (%s): no new undirected work", exc)
                    self.suspect()

    async def _watch(self) -> None:
        while True:
            try:
                start = self.view.revision + 1
                watch = await self._client.watch_prefix(self.prefix, start_revision=start)
                async for event in watch:
                    self._event(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.debug("etcd watch ended (%s); again", exc)
                await asyncio.sleep(self.ttl / 3)

    def _event(self, event: Any) -> None:
        kv = event.kv
        token = kv.key[len(self.prefix) :].decode("utf-8", "replace")
        revision = kv.mod_revision
        if str(event.kind).endswith("DELETE"):
            self._set_view(apply(self.view, Deleted(revision, token)))
            return
        try:
            member = decode_member(token, msgpack.unpackb(kv.value, raw=False), kv.create_revision)
        except (ValueError, msgpack.UnpackException) as exc:
            logger.warning("etcd: member %s unreadable, ignored: %s", token, exc)
            return
        self._set_view(apply(self.view, Put(revision, member)))
