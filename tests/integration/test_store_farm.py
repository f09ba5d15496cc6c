"""The account store under a farm: members sharing one storage directory (issue 6, item 5).

Real member processes on loopback with a real etcd (``farm_proc.py``).  Phones are
UDP sockets of this process, each sending through one member, as a balancer would
have placed its flow.  What acknowledged registrations leave behind is checked
through every member (a query, RFC 3261 §10.2.3) and on the storage, read with the
store API (``AccountStore.read_info``), whatever the layout:

- the same AORs registered, refreshed and removed at the same time through
  different members: each AOR lists exactly what the last acknowledged REGISTER of
  each contact left (no binding lost, none removed coming back);
- ownership moving under load (a member joins, another is drained and comes
  back): every acknowledged REGISTER is listed afterwards, and none got a 5xx;
- damaged account files (``account.info`` half written, garbage, nested past json's
  limit, a record that never expires; ``account.settings`` half written): the
  member answers, logs an error, serves the account again after its next
  registration, and that survives a restart.
"""

from __future__ import annotations

import logging
import math
import random
import re
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from farm_proc import (
    contact_uris,
    contacts,
    loopback_farm,
    register,
    register_request,
    until,
)
from sippcalls import DOMAIN, make_data

from cluster.ring import Ring
from mail.foldering import Method
from mail.store import AccountStore
from sipfarm.farm import AccountBindings
from sipfarm.flows import Flows
from sipfarm.registrar.stored import decode_bindings, encode_bindings

pytestmark = pytest.mark.timeout(90)

#: A UA's non-INVITE client transaction (RFC 3261 §17.1.2.2): T1, T2, and how long
#: this phone waits for an answer at most (well below Timer F, 64*T1: a test is bounded).
T1, T2 = 0.5, 4.0
ANSWER_S = 10.0

_CALL_ID = re.compile(rb"\r\nCall-ID: ([^\r\n]*)\r\n")
_CSEQ = re.compile(rb"\r\nCSeq: (\d+) REGISTER\r\n")


@dataclass(frozen=True, slots=True)
class Sent:
    """One REGISTER a phone sent, and the status line it got (or "no answer")."""

    member: tuple[str, int]
    user: str
    call_id: str
    cseq: int
    bindings: tuple[tuple[str, int], ...]  # (contact URI, expires)
    status: str


class Phone:
    """A UDP socket on 127.0.0.1 that sends REGISTERs several at a time and retransmits
    them as a UA does (T1 doubling up to T2) until answered, ANSWER_S at most."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    def contact(self, name: str) -> str:
        return f"sip:{name}@127.0.0.1:{self.port}"

    def exchange(
        self,
        requests: list[tuple[tuple[str, int], str, str, int, tuple[tuple[str, int], ...]]],
    ) -> list[Sent]:
        """Send ``requests`` ``(member, user, call_id, cseq, bindings)`` at once; each with
        its answer, in the order given."""
        wire = {
            (call_id, cseq): (member, register_request(self.port, user, call_id, cseq, bindings))
            for member, user, call_id, cseq, bindings in requests
        }
        answers: dict[tuple[str, int], str] = {}
        start = time.monotonic()
        interval, resend_at = T1, start
        while len(answers) < len(wire):
            now = time.monotonic()
            if now - start > ANSWER_S:
                break
            if now >= resend_at:  # the first send, or Timer E fired: (re)send the unanswered
                for key, (member, data) in wire.items():
                    if key not in answers:
                        self.sock.sendto(data, member)
                resend_at, interval = now + interval, min(interval * 2, T2)
            self.sock.settimeout(max(0.01, min(resend_at, start + ANSWER_S) - now))
            try:
                data, sender = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            call_id, cseq = _CALL_ID.search(data), _CSEQ.search(data)
            if call_id is None or cseq is None or data.startswith(b"SIP/2.0 1"):
                continue
            key = (call_id.group(1).decode(), int(cseq.group(1)))
            if key in wire and key not in answers:
                assert sender == wire[key][0], f"answer from {sender}, not {wire[key][0]}"
                answers[key] = data.split(b"\r\n", 1)[0].decode()
        return [
            Sent(member, user, call_id, cseq, bindings, answers.get((call_id, cseq), "no answer"))
            for member, user, call_id, cseq, bindings in requests
        ]


def stored(data: Path, user: str) -> dict[str, tuple[str, int]]:
    """The live bindings in ``user``'s account.info: contact → (Call-ID, CSeq)."""
    info = AccountStore(data).read_info(user, DOMAIN)
    assert info is not None, f"{user}: no account.info"
    now = time.time()
    return {b.contact: (b.call_id, b.cseq) for b, _ in decode_bindings(info) if b.expires_at > now}


def listed(member: tuple[str, int], user: str) -> set[str]:
    """The contacts a query through ``member`` lists for ``user``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        return contact_uris(contacts(sock, member, user))


def run_threads(threads: list[threading.Thread], timeout: float) -> None:
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a phone did not finish in time"


# --------------------------------------------------- 1. the same AORs through every member

USERS = [f"u{i}" for i in range(8)]
ROUNDS = 20


@dataclass
class Line:
    """One phone's contact on one AOR: its Call-ID and last CSeq (RFC 3261 §10.2.4)."""

    call_id: str
    cseq: int = 0


def test_concurrent_registrations_of_the_same_aors_through_different_members(
    tmp_path: Path,
) -> None:
    data = make_data(tmp_path / "data", dict.fromkeys(USERS, "pw"), DOMAIN)
    with loopback_farm(tmp_path, data, ("m1", "m2", "m3")) as farm:
        members = list(farm.members.values())
        phones = [Phone() for _ in members]
        logs: list[list[Sent]] = [[] for _ in phones]
        errors: list[BaseException] = []
        start = threading.Barrier(len(phones))

        def run(k: int) -> None:
            """Phone k, through member k: each round one REGISTER per AOR, all at once and
            in a random order: an add or a refresh, a removal, or a reboot (a new Call-ID
            that replaces the binding, §10.3 step 7)."""
            try:
                phone, member, rng = phones[k], members[k].sip, random.Random(k)
                lines = {user: Line(f"{user}-p{k}-0") for user in USERS}
                start.wait(10)
                for n in range(ROUNDS):
                    batch = []
                    for user in rng.sample(USERS, len(USERS)):
                        line = lines[user]
                        op = rng.choices(("register", "remove", "reboot"), (6, 3, 1))[0]
                        if op == "reboot":
                            line.call_id, line.cseq = f"{user}-p{k}-{n + 1}", 0
                        line.cseq += 1
                        expires = 0 if op == "remove" else 300
                        binding = ((phone.contact(user), expires),)
                        batch.append((member, user, line.call_id, line.cseq, binding))
                    logs[k].extend(phone.exchange(batch))
            except BaseException as exc:
                errors.append(exc)
                raise

        try:
            run_threads([threading.Thread(target=run, args=(k,)) for k in range(len(phones))], 120)
        finally:
            for phone in phones:
                phone.close()
        assert errors == []

        # What the last acknowledged REGISTER of each contact left: (user, contact) →
        # its (Call-ID, CSeq), or None once removed.  Each contact is one phone's, and a
        # phone waits for each answer before it sends that contact's next REGISTER.
        expected: dict[tuple[str, str], tuple[str, int] | None] = {}
        kinds: Counter[str] = Counter()
        refused = [s for log in logs for s in log if s.status != "SIP/2.0 200 OK"]
        for log in logs:
            for s in log:
                if s.status != "SIP/2.0 200 OK":
                    continue
                contact, expires = s.bindings[0]
                key = (s.user, contact)
                before = expected.get(key)
                if expires == 0:
                    kinds["removed" if before else "removed, not there"] += 1
                elif before is None:
                    kinds["added"] += 1
                else:
                    kinds["refreshed" if before[0] == s.call_id else "replaced"] += 1
                expected[key] = (s.call_id, s.cseq) if expires else None
        counters = {m.token: m.status()["counters"] for m in members}
        relays = {t: {k: v for k, v in c.items() if "relay" in k} for t, c in counters.items()}
        print(dict(kinds), relays)
        assert refused == [], refused[:10]
        assert all(kinds[k] for k in ("added", "refreshed", "replaced", "removed")), kinds
        # through the member the phone used, most REGISTERs were another member's to serve
        assert all(c.get("relayed_out", 0) > 0 for c in counters.values()), counters

        for user in USERS:
            want = {c: v for (u, c), v in expected.items() if u == user and v is not None}
            for m in members:
                assert listed(m.sip, user) == set(want), (user, m.token)
            assert stored(data, user) == want, user
        assert all(m.process.poll() is None for m in members)


# ----------------------------------------------------- 2. ownership moving under load

LOAD_USERS = [f"u{i}" for i in range(30)]
#: Each REGISTER n of an AOR adds contact n and removes contact n - KEEP.
KEEP = 3
BATCH = 6


@dataclass
class Load:
    """REGISTERs in batches of BATCH AORs, through the members in ``targets`` in turn,
    until ``stop`` (or MAX_BATCHES): a phone population that never pauses."""

    phone: Phone
    targets: list[tuple[str, int]]
    stop: threading.Event = field(default_factory=threading.Event)
    sent: list[Sent] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    MAX_BATCHES = 1000

    @property
    def acked(self) -> int:
        return sum(1 for s in self.sent if s.status == "SIP/2.0 200 OK")

    def run(self) -> None:
        try:
            n = dict.fromkeys(LOAD_USERS, 0)
            for b in range(self.MAX_BATCHES):
                if self.stop.is_set():
                    return
                member = self.targets[b % len(self.targets)]
                batch = []
                for i in range(BATCH):
                    user = LOAD_USERS[(b * BATCH + i) % len(LOAD_USERS)]
                    n[user] += 1
                    k = n[user]
                    bindings = [(self.phone.contact(f"{user}-{k}"), 300)]
                    if k > KEEP:
                        bindings.append((self.phone.contact(f"{user}-{k - KEEP}"), 0))
                    batch.append((member, user, f"load-{user}", k, tuple(bindings)))
                self.sent.extend(self.phone.exchange(batch))
        except BaseException as exc:
            self.errors.append(exc)
            raise


def test_acknowledged_registrations_survive_owner_changes_under_load(tmp_path: Path) -> None:
    data = make_data(tmp_path / "data", dict.fromkeys(LOAD_USERS, "pw"), DOMAIN)
    aors = [f"sip:{u}@{DOMAIN}" for u in LOAD_USERS]
    two, three, drained = Ring(("m1", "m2")), Ring(("m1", "m2", "m3")), Ring(("m2", "m3"))
    # the AORs whose owner changes when m3 joins, when m1 is then drained, and back
    assert [a for a in aors if two.owner(a) != three.owner(a)]
    assert [a for a in aors if three.owner(a) != drained.owner(a)]
    with loopback_farm(tmp_path, data, ("m1", "m2")) as farm:
        m1, m2 = farm.members["m1"], farm.members["m2"]
        load = Load(Phone(), [m1.sip, m2.sip])
        thread = threading.Thread(target=load.run)
        thread.start()
        try:

            def more(count: int, what: str) -> None:
                mark = load.acked
                until(lambda: load.acked >= mark + count or bool(load.errors), 30.0, what)

            more(60, "registrations under way")
            m3 = farm.start("m3")  # joins under load
            farm.ready(m3)
            farm.ring_is(("m1", "m2", "m3"))
            load.targets.append(m3.sip)  # the balancer sends to it once it is ready
            more(60, "registrations with m3 in the ring")
            m1.post("/not-ready")  # drained under load: its phones still send to it
            farm.ring_is(("m2", "m3"))
            more(60, "registrations with m1 drained")
            m1.post("/ready")  # back: it owns its AORs again, and must not serve from the
            farm.ring_is(("m1", "m2", "m3"))  # memory it had before they moved away
            more(60, "registrations with m1 back")
        finally:
            load.stop.set()
            thread.join(60)
            load.phone.close()
        assert not thread.is_alive() and load.errors == []

        members = [m1, m2, m3]
        counters = {m.token: m.status()["counters"] for m in members}
        failed = [s for s in load.sent if s.status != "SIP/2.0 200 OK"]
        print(
            f"{len(load.sent)} REGISTERs, {len(failed)} not 200;",
            {t: {k: v for k, v in c.items() if "fence" in k} for t, c in counters.items()},
        )
        # None is refused: a moving AOR's REGISTERs wait behind the fence (held, then
        # served), and a drained member relays what it gets to the owner.
        assert failed == [], failed[:10]
        assert counters["m3"].get("fences", 0) >= 1  # it gained AORs, and waited for m1, m2

        # What the acknowledged REGISTERs left, in order (one Call-ID per AOR): each adds
        # its contact and removes the one KEEP before it, so a REGISTER whose effect was
        # lost (a new owner that read the AOR before its last write) leaves the contact
        # it removed behind for good, and the listing shows it.
        expected: dict[str, dict[str, tuple[str, int]]] = {u: {} for u in LOAD_USERS}
        for s in load.sent:
            for contact, expires in s.bindings:
                if expires:
                    expected[s.user][contact] = (s.call_id, s.cseq)
                else:
                    expected[s.user].pop(contact, None)
        assert all(len(c) == KEEP for c in expected.values())
        for user in LOAD_USERS:
            for m in members:
                assert listed(m.sip, user) == set(expected[user]), (user, m.token)
            assert stored(data, user) == expected[user], user
        assert all(m.process.poll() is None for m in members)


# ------------------------------------------------------------- 3. damaged account files

#: account.info damaged four ways; account.settings half written; an intact account.
DAMAGED_INFO = ("halfinfo", "junkinfo", "deepinfo", "infinfo")
HALF_SETTINGS = "halfsettings"
INTACT = "intact"


def damage_info(store: AccountStore, user: str) -> Path:
    """Damage ``user``'s account.info the way its name says; the path damaged."""
    path = store.layout.info_path(user, DOMAIN)
    data = path.read_bytes()
    if user == "halfinfo":  # a write cut off half way (a copy, a file system without
        path.write_bytes(data[: len(data) // 2])  # atomic rename, a disk error)
    elif user == "junkinfo":
        path.write_bytes(b"\x00\xff\xfe\x81 not a bindings record \x00" * 8)
    elif user == "deepinfo":  # JSON nested past the json module's recursion limit
        path.write_bytes(b"[" * 100_000)
    else:  # a well-formed record whose binding never expires (json reads Infinity)
        records = [(b._replace(expires_at=math.inf), h) for b, h in decode_bindings(data)]
        path.write_bytes(encode_bindings(records))
    return path


def test_damaged_account_files_are_refused_or_started_afresh_never_a_crash(
    tmp_path: Path,
) -> None:
    """Carrier layout: foldering and fast storage, so a file is found by the store only.

    What a damaged account.info should become (the product's choice, which this test
    holds): the account is served as having no bindings, and the next registration
    writes a fresh file.  Nothing is salvaged from the damaged bytes: a half-read
    record may hold a binding its phone has removed, and routing calls to a contact
    that is no longer the user's is worse than having none; phones register again
    within their interval (at most max_expires, 3600 s), so an empty record heals by
    itself, as after a NAT rebinding.  An account.settings cannot be repaired at all:
    it holds the password only as its HA1s, and half of them is nothing.  The member
    refuses the account with a server error (500 + Retry-After, never the 404 of an
    unknown user: a phone told its account does not exist may stop registering, and
    a storage outage would tell it to every phone at once) and logs the file; the
    operator's repair is a new password (``sipfarm account passwd``), which writes
    fresh settings.
    """
    data = tmp_path / "data"
    store = AccountStore(data)
    store.add_domain(DOMAIN, account_foldering=Method.parse("1/1"), fast=1)
    users = [*DAMAGED_INFO, HALF_SETTINGS, INTACT]
    for user in users:
        store.add_account(user, DOMAIN, "pw")
    with loopback_farm(tmp_path, data, ("m1", "m2")) as farm:
        m1, m2 = farm.members["m1"], farm.members["m2"]
        first, second = Phone(), Phone()
        try:
            first.sock.settimeout(5)
            second.sock.settimeout(5)
            for user in users:
                assert register(first.sock, m1.sip, user) == "SIP/2.0 200 OK", user
            statuses = farm.stop(m1, m2)
            assert statuses == [0, 0], (m1.log_text()[-3000:], m2.log_text()[-3000:])

            for user in DAMAGED_INFO:
                damage_info(store, user)
            settings = store.layout.settings_path(HALF_SETTINGS, DOMAIN)
            settings.write_bytes(settings.read_bytes()[: settings.stat().st_size // 2])

            m1, m2 = farm.start("m1", m1.host), farm.start("m2", m2.host)
            farm.ready(m1, m2)
            farm.ring_is(("m1", "m2"))
            for m in (m1, m2):  # answered through either member, never a hang
                for user in DAMAGED_INFO:
                    assert listed(m.sip, user) == set(), (user, m.token)
                assert listed(m.sip, INTACT) == {first.contact(INTACT)}
                answer = register(second.sock, m.sip, HALF_SETTINGS)
                assert answer == "SIP/2.0 500 Account Unreadable", answer
            assert m1.process.poll() is None and m2.process.poll() is None
            logs = m1.log_text() + m2.log_text()
            errors = [line for line in logs.splitlines() if " ERROR " in line]
            for user in DAMAGED_INFO:
                assert any(user in line for line in errors), (user, errors)
            assert any(str(settings) in line for line in errors), errors
            assert "Traceback" not in logs, logs[-5000:]

            for user in DAMAGED_INFO:  # the next registration writes a fresh file
                assert register(second.sock, m2.sip, user) == "SIP/2.0 200 OK", user
                assert set(stored(data, user)) == {second.contact(user)}, user
            store.set_password(HALF_SETTINGS, DOMAIN, "new")  # the operator's repair

            m1, m2 = farm.restart(m1, m2)
            farm.ring_is(("m1", "m2"))
            assert register(second.sock, m1.sip, HALF_SETTINGS) == "SIP/2.0 200 OK"
            for m in (m1, m2):
                for user in DAMAGED_INFO:
                    assert listed(m.sip, user) == {second.contact(user)}, (user, m.token)
                assert listed(m.sip, INTACT) == {first.contact(INTACT)}
                # its bindings were kept while it was refused: the phone's first
                # registration has not expired, and is served again with the account
                both = {first.contact(HALF_SETTINGS), second.contact(HALF_SETTINGS)}
                assert listed(m.sip, HALF_SETTINGS) == both
        finally:
            first.close()
            second.close()
        assert farm.stop(m1, m2) == [0, 0]


def test_a_damaged_account_info_is_logged_with_its_path(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """In process: the farm's storage edge on a real directory, one damaged file."""
    store = AccountStore(tmp_path)
    store.add_domain(DOMAIN, account_foldering=Method.parse("1/1"), fast=1)
    store.add_account("halfinfo", DOMAIN, "pw")
    store.write_info("halfinfo", DOMAIN, encode_bindings([]), writer="m1")
    path = damage_info(store, "halfinfo")
    storage = AccountBindings(store, Flows("m1"), "m1")
    with caplog.at_level(logging.ERROR, logger="sipfarm.farm"):
        assert storage.read(f"sip:halfinfo@{DOMAIN}") == []
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors
    assert any(str(path) in e for e in errors), errors
    assert path.with_name(path.name + ".damaged").exists()  # its bytes kept for the operator
