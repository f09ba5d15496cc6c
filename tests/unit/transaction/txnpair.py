"""A client core wired to a server core over an in-memory, lossy, simulated-time wire.

Like h11's ConnectionPair: no sockets, no sleeps.  Messages cross the wire as
bytes and are parsed again; each crossing is lost with probability ``loss``
(from a seeded ``random.Random``).  The TUs are minimal UAs: the server TU
answers ``status`` at once and, for a 2xx to INVITE, re-sends it (T1 doubling
to T2, RFC 3261 §13.3.1.4) until the ACK arrives; the client TU ACKs every 2xx
with its own branch (§13.2.2.4).
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from sipfarm.sip import Request, Response, make_response, parse
from sipfarm.transaction import (
    Action,
    CancelTimer,
    DeliverRequest,
    DeliverResponse,
    Event,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    RequestReceived,
    ResponseReceived,
    SendRequest,
    SendResponse,
    StartTimer,
    Terminated,
    TerminationReason,
    Timer,
    TimerConfig,
    TimerFired,
    Transaction,
    TuSendResponse,
    client_key,
    make_ack,
    server_key,
)

CLIENT, SERVER, TU = "client", "server", "tu"


@dataclass
class Pair:
    request: Request
    loss: float = 0.0
    seed: int = 0
    status: int = 200
    latency: float = 0.01
    config: TimerConfig = field(default_factory=TimerConfig)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.now = 0.0
        self.client: Transaction = (
            InviteClientTransaction(self.request, self.config)
            if self.request.method == "INVITE"
            else NonInviteClientTransaction(self.request, self.config)
        )
        self.server: Transaction | None = None
        self.client_got: list[Response] = []  # what the client TU was given
        self.server_got: list[Request] = []  # what the server TU was given (2xx ACKs too)
        self.client_ended: TerminationReason | None = None
        self.server_ended: TerminationReason | None = None
        self.sent = 0
        self.lost = 0
        self._queue: list[tuple[float, int, str, object]] = []
        self._seq = 0
        self._timers: dict[tuple[str, Timer], int] = {}  # live timer -> its queue seq
        self._ok: Response | None = None
        self._ok_interval = self.config.T1

    # -- the wire and the clock ----------------------------------------------------------

    def _push(self, at: float, kind: str, payload: object) -> int:
        self._seq += 1
        heapq.heappush(self._queue, (at, self._seq, kind, payload))
        return self._seq

    def _send(self, to: str, message: Request | Response) -> None:
        self.sent += 1
        if self.rng.random() < self.loss:
            self.lost += 1
            return
        self._push(self.now + self.latency, "to-" + to, bytes(message))

    def run(self, until: float = 64.0) -> Pair:
        self._run_actions(CLIENT, self.client.start(self.now))
        while self._queue and self._queue[0][0] <= until:
            self.now, seq, kind, payload = heapq.heappop(self._queue)
            if kind == "timer":
                assert isinstance(payload, tuple)
                side, timer = payload
                if self._timers.get((side, timer)) != seq:
                    continue  # cancelled or restarted
                del self._timers[(side, timer)]
                if side == TU:
                    self._resend_ok()
                else:
                    self._feed(side, TimerFired(timer))
            elif kind == "to-server":
                assert isinstance(payload, bytes)
                self._at_server(parse(payload))
            else:
                assert isinstance(payload, bytes)
                self._at_client(parse(payload))
        return self

    # -- the two transaction layers ------------------------------------------------------

    def _feed(self, side: str, event: Event) -> None:
        tx = self.client if side == CLIENT else self.server
        assert tx is not None
        self._run_actions(side, tx.handle(event, self.now))

    def _at_client(self, msg: Request | Response) -> None:
        assert isinstance(msg, Response)
        if client_key(msg) == client_key(self.request) and not self.client.terminated:
            self._feed(CLIENT, ResponseReceived(msg))

    def _at_server(self, msg: Request | Response) -> None:
        assert isinstance(msg, Request)
        if self.server is not None and server_key(msg) == server_key(self.server.request):
            if not self.server.terminated:
                self._feed(SERVER, RequestReceived(msg))
            return
        if msg.method == "ACK":  # the ACK of a 2xx: a transaction of its own (§17.1.1.3)
            self._deliver_to_server_tu(msg)
            return
        cls = InviteServerTransaction if msg.method == "INVITE" else NonInviteServerTransaction
        self.server = cls(msg, self.config)
        self._run_actions(SERVER, self.server.start(self.now))

    def _run_actions(self, side: str, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, SendRequest):
                self._send(SERVER, action.request)
            elif isinstance(action, SendResponse):
                self._send(CLIENT, action.response)
            elif isinstance(action, StartTimer):
                key = (side, action.timer)
                self._timers[key] = self._push(self.now + action.delay, "timer", key)
            elif isinstance(action, CancelTimer):
                self._timers.pop((side, action.timer), None)
            elif isinstance(action, DeliverResponse):
                self._deliver_to_client_tu(action.response)
            elif isinstance(action, DeliverRequest):
                self._deliver_to_server_tu(action.request)
            elif isinstance(action, Terminated):
                if side == CLIENT:
                    self.client_ended = action.reason
                else:
                    self.server_ended = action.reason

    # -- the two TUs ---------------------------------------------------------------------

    def _deliver_to_client_tu(self, response: Response) -> None:
        self.client_got.append(response)
        if self.request.method == "INVITE" and 200 <= response.status < 300:
            ack = make_ack(self.request, response)
            via = f"SIP/2.0/UDP {self.request.via[0].sent_by};branch=z9hG4bKack2xx"
            self._send(SERVER, ack.replace(headers=ack.headers.set("Via", via)))

    def _deliver_to_server_tu(self, request: Request) -> None:
        self.server_got.append(request)
        if request.method == "ACK":
            self._timers.pop((TU, Timer.G), None)  # stop re-sending the 2xx
            return
        assert self.server is not None
        answer = make_response(request, self.status, to_tag="8321234356")
        self._feed(SERVER, TuSendResponse(answer))
        if request.method == "INVITE" and 200 <= self.status < 300:
            self._ok = answer
            self._timers[(TU, Timer.G)] = self._push(
                self.now + self._ok_interval, "timer", (TU, Timer.G)
            )

    def _resend_ok(self) -> None:
        assert self._ok is not None and self.server is not None
        if self.server.terminated:
            return  # timer L ran out: 64*T1 of 2xx retransmissions (§13.3.1.4)
        self._feed(SERVER, TuSendResponse(self._ok))
        self._ok_interval = min(2 * self._ok_interval, self.config.T2)
        self._timers[(TU, Timer.G)] = self._push(
            self.now + self._ok_interval, "timer", (TU, Timer.G)
        )

    @property
    def completed(self) -> bool:
        """The client TU has a final response; for INVITE/2xx the server TU has the ACK too."""
        finals = [r for r in self.client_got if r.status >= 200]
        if not finals:
            return False
        if self.request.method == "INVITE" and 200 <= finals[0].status < 300:
            return any(r.method == "ACK" for r in self.server_got)
        return True
