"""The member's HTTP endpoint: health for the balancer, drain for rolling updates (edge).

h11 speaks HTTP/1.1; this module maps four routes onto the member:

- ``GET /health``: 200 while the member is ready, 503 once it is not (a balancer's
  health monitor takes it out of rotation on the 503);
- ``GET /status``: the member's token, state, whether it is idle (no transaction
  left) and its counters, as JSON;
- ``POST /not-ready``: drain — the member answers health probes 503 and keeps
  serving what it has; ``/status`` says ``"idle": true`` once no transaction is
  at work any more (those that only absorb retransmissions may remain) and no
  dialog it record-routed is up (a 2xx to INVITE opens one, a 2xx to BYE closes
  it) or 30 s have passed since the drain (``sipfarm.node.Member.idle``), and the
  member can be stopped for a rolling update;
- ``POST /ready``: back into rotation (both POSTs, once an admin password is set
  (``sipfarm admin password``), only with it, as the provisioning API);
- ``/domains…``: the provisioning API (:mod:`sipfarm.provisioning`), behind the
  admin password; each write is done by its subject's writer in the farm
  (``sipfarm.node.Member.provide``), in a worker thread while the member keeps
  serving; 503 with Retry-After when that writer cannot be asked.

Anything else gets 404 (405 for a known path with the wrong method); a request
head larger than 8 KiB, or one that is not HTTP, closes the connection; a body
larger than 1 MiB gets 413.  Requests on one connection are answered in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from typing import Any, Protocol

import h11

from .provisioning import MAX_BODY, Answer, Provisioning

logger = logging.getLogger(__name__)

__all__ = ["AdminServer", "Drainable"]

MAX_HEAD = 8192
#: Seconds a client waits before it asks again after a 503 (the farm was changing).
RETRY_AFTER = 1
#: Provisioning requests at work (a task is kept alive only while referenced).
_working: set[asyncio.Task[Answer]] = set()


class Drainable(Protocol):
    """What the endpoint asks of the member."""

    token: str

    @property
    def ready(self) -> bool: ...

    @property
    def idle(self) -> bool: ...

    def set_ready(self, ready: bool) -> None: ...

    def stats(self) -> dict[str, int]: ...

    def view(self) -> dict[str, Any] | None: ...

    @property
    def provisioning(self) -> Provisioning | None: ...

    async def provide(self, method: str, path: str, body: bytes) -> Answer: ...


class _Http(asyncio.Protocol):
    def __init__(self, member: Drainable) -> None:
        self.member = member
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.transport: asyncio.Transport | None = None
        self._request: h11.Request | None = None
        self._body: list[bytes] = []
        self._size = 0
        self._busy = False  # an answer is being made off the loop: events wait

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data)
        if not self._busy:
            self._run()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def _run(self) -> None:
        try:
            self._events()
        except h11.RemoteProtocolError as exc:
            self._send_error(exc.error_status_hint, str(exc))
        except Exception:
            logger.exception("admin request failed")
            self._close()

    def _events(self) -> None:
        while not self._busy:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                return
            if isinstance(event, h11.Request):
                self._request, self._body, self._size = event, [], 0
            elif isinstance(event, h11.Data):
                self._size += len(event.data)
                if self._size <= MAX_BODY:
                    self._body.append(event.data)
            elif isinstance(event, h11.EndOfMessage) and self._request is not None:
                request, self._request = self._request, None
                if self._size > MAX_BODY:
                    self._json(413, {"error": f"the body is over {MAX_BODY} bytes"})
                elif self._provision(request, b"".join(self._body)):
                    if self._busy:
                        return  # answered when the worker is done (_provided)
                else:
                    self._answer(request, dict(request.headers).get(b"authorization"))
                if not self._next():
                    return
            elif isinstance(event, h11.ConnectionClosed):
                self._close()
                return

    def _next(self) -> bool:
        """After an answer: the next request on the connection, or close; False when closed."""
        if self.conn.our_state is h11.MUST_CLOSE:
            self._close()
            return False
        self.conn.start_next_cycle()
        return True

    def _provision(self, request: h11.Request, body: bytes) -> bool:
        """A provisioning request: refused here (401) or answered off the loop (then
        ``_busy``); True when it is one."""
        provisioning = self.member.provisioning
        path = request.target.decode("ascii", "replace").split("?", 1)[0]
        if provisioning is None or not provisioning.serves(path):
            return False
        authorization = dict(request.headers).get(b"authorization")
        if not provisioning.authorized(authorization):
            self._json(401, {"error": "the admin password is needed"}, provisioning.challenge())
            return True
        self._busy = True
        method = request.method.decode("ascii", "replace")
        work = asyncio.get_running_loop().create_task(self.member.provide(method, path, body))
        _working.add(work)
        work.add_done_callback(self._provided)
        return True

    def _provided(self, work: asyncio.Task[Answer]) -> None:
        _working.discard(work)
        self._busy = False
        try:
            status, body = work.result()
        except Exception:
            logger.exception("provisioning failed")
            status, body = 500, {"error": "internal error (logged)"}
        if self.transport is None:
            return  # the client went away meanwhile
        extra = [("Allow", body["allow"])] if status == 405 and body else []
        if status == 503:
            extra = [("Retry-After", str(RETRY_AFTER))]
        self._json(status, body, extra)
        if self._next():
            self._run()

    def _answer(self, request: h11.Request, authorization: bytes | None) -> None:
        method = request.method.decode()
        path = request.target.decode().split("?", 1)[0]
        member = self.member
        routes: dict[str, str] = {
            "/health": "GET",
            "/status": "GET",
            "/not-ready": "POST",
            "/ready": "POST",
        }
        if path not in routes:
            self._json(404, {"error": f"no such path: {path}"})
            return
        if method != routes[path]:
            self._json(405, {"error": f"{path} takes {routes[path]}"}, [("Allow", routes[path])])
            return
        provisioning = member.provisioning
        if (
            method == "POST"
            and provisioning is not None
            and provisioning.password_set()
            and not provisioning.authorized(authorization)
        ):  # a drain changes the farm: the admin's, once there is an admin password
            self._json(401, {"error": "the admin password is needed"}, provisioning.challenge())
            return
        if path == "/not-ready":
            member.set_ready(False)
        elif path == "/ready":
            member.set_ready(True)
        if path == "/health":
            self._json(200 if member.ready else 503, {"state": _state(member)})
            return
        stats = member.stats()
        self._json(
            200,
            {
                "token": member.token,
                "state": _state(member),
                "idle": member.idle,
                "counters": stats,
                "view": member.view(),
            },
        )

    def _json(
        self, status: int, body: dict[str, Any] | None, extra: Sequence[tuple[str, str]] = ()
    ) -> None:
        data = b"" if body is None else (json.dumps(body, sort_keys=True) + "\n").encode()
        headers = [*extra]
        if status != 204:
            headers += [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        self._write(h11.Response(status_code=status, headers=headers))
        if data:
            self._write(h11.Data(data=data))
        self._write(h11.EndOfMessage())

    def _send_error(self, status: int, why: str) -> None:
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            with contextlib.suppress(h11.LocalProtocolError):
                self._json(status, {"error": why})
        self._close()

    def _write(self, event: Any) -> None:
        data = self.conn.send(event)
        if data and self.transport is not None:
            self.transport.write(data)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _state(member: Drainable) -> str:
    return "ready" if member.ready else "not-ready"


class AdminServer:
    """The HTTP endpoint of one member."""

    def __init__(self, member: Drainable) -> None:
        self.member = member
        self._server: asyncio.AbstractServer | None = None

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Http(self.member), host, port, reuse_address=True
        )
        logger.info("admin http on %s:%d", host, port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
