"""Provisioning in a farm: every write is done by its subject's writer (issue 6 item 4).

Two members on one storage directory (:mod:`farm_proc`).  An account is written
by its ring owner, whichever member the HTTP request reached (a ``provision`` call
over the cluster link), and every member serves the change at once (the writer
tells the others which account changed; a cached "no such account" would
otherwise hold for 30 s).  A domain is written by the controller.  When the
writer cannot be asked, the answer is 503 with Retry-After and nothing is written.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from farm_proc import LoopbackFarm, Proc, contacts, loopback_farm, register, until
from sipp import SIPFARM
from sippcalls import DOMAIN, make_data
from test_provisioning_api import PASSWORD, call

from cluster.ring import Ring
from mail.store import AccountStore

pytestmark = pytest.mark.timeout(120)

TOKENS = ("m1", "m2")


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[LoopbackFarm]:
    data = make_data(tmp_path / "data", {"bob": "secret"}, DOMAIN)
    subprocess.run(
        [str(SIPFARM), "admin", "password", "--password", PASSWORD, "--data", str(data)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    with loopback_farm(tmp_path, data, TOKENS) as started:
        yield started


def owned_by(token: str, prefix: str) -> str:
    """A user name whose account ``token`` owns on the ring of TOKENS."""
    ring = Ring(TOKENS)
    return next(
        f"{prefix}{i}"
        for i in itertools.count()
        if ring.owner(f"sip:{prefix}{i}@{DOMAIN}") == token
    )


def counter(p: Proc, name: str) -> int:
    return int(p.status()["counters"].get(name, 0))


def api(p: Proc, method: str, path: str, body: object = None):  # type: ignore[no-untyped-def]
    return call((p, p.http), method, path, body)  # type: ignore[arg-type]


def test_an_account_is_written_by_its_owner_and_served_at_once_by_every_member(
    farm: LoopbackFarm,
) -> None:
    m1, m2 = farm.members["m1"], farm.members["m2"]
    user = owned_by("m2", "new")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        for m in (m1, m2):  # unknown: each member's cache now says so
            assert register(sock, m.sip, user).startswith("SIP/2.0 404"), m.token
        asked, served = counter(m1, "asked_provision"), counter(m2, "provision_for_others")
        status, body, _ = api(
            m1, "POST", f"/domains/{DOMAIN}/accounts", {"user": user, "password": "pw"}
        )
        assert (status, body and body["user"]) == (201, user)
        assert counter(m1, "asked_provision") == asked + 1  # m1 received it, m2 wrote it
        assert counter(m2, "provision_for_others") == served + 1
        for m in (m1, m2):
            assert register(sock, m.sip, user) == "SIP/2.0 200 OK", m.token

        # A second POST of the same account, through the other member: 409 from the owner.
        status, body, _ = api(
            m2, "POST", f"/domains/{DOMAIN}/accounts", {"user": user, "password": "x"}
        )
        assert status == 409, body

        # Removed through the member that does not own it: refused everywhere at once.
        assert api(m1, "DELETE", f"/domains/{DOMAIN}/accounts/{user}")[0] == 204
        assert AccountStore(farm.data).get(user, DOMAIN) is None
        for m in (m1, m2):
            assert register(sock, m.sip, user).startswith("SIP/2.0 404"), m.token

    # m1's accounts are written by m1, whoever receives the request.
    other = owned_by("m1", "own")
    served = counter(m1, "provision_for_others")
    assert (
        api(m2, "POST", f"/domains/{DOMAIN}/accounts", {"user": other, "password": "a"})[0] == 201
    )
    assert (
        api(m2, "PUT", f"/domains/{DOMAIN}/accounts/{other}/password", {"password": "b"})[0] == 200
    )
    assert counter(m1, "provision_for_others") == served + 2

    # A domain is written by the controller.
    controller = farm.members[m1.status()["view"]["controller"]]
    elsewhere = m2 if controller is m1 else m1
    served = counter(controller, "provision_for_others")
    status, body, _ = api(elsewhere, "POST", "/domains", {"domain": "corp.example"})
    assert status == 201, body
    assert counter(controller, "provision_for_others") == served + 1
    assert api(elsewhere, "GET", "/domains")[1] == {"domains": ["corp.example", DOMAIN]}


def test_a_write_whose_owner_cannot_be_asked_gets_503_and_writes_nothing(
    farm: LoopbackFarm,
) -> None:
    m1, m2 = farm.members["m1"], farm.members["m2"]
    user = owned_by("m2", "frozen")
    os.kill(m2.process.pid, signal.SIGSTOP)  # alive for etcd a while (its lease), silent
    try:
        until(lambda: not m1.status()["view"]["members"]["m2"]["link"], what="m2 silent")
        status, body, headers = api(
            m1, "POST", f"/domains/{DOMAIN}/accounts", {"user": user, "password": "pw"}
        )
        assert status == 503, body
        assert headers.get("Retry-After") == "1"
        assert body is not None and "m2" in str(body["error"])
        assert AccountStore(farm.data).get(user, DOMAIN) is None
    finally:
        os.kill(m2.process.pid, signal.SIGCONT)

    # Once the farm has settled (m2 back, or gone and its accounts m1's), the write goes.
    def written() -> bool:
        answer = api(m1, "POST", f"/domains/{DOMAIN}/accounts", {"user": user, "password": "pw"})
        return answer[0] in (201, 409)

    until(written, timeout=30, what="the write after m2 woke")
    assert AccountStore(farm.data).get(user, DOMAIN) is not None


def message(port: int, to: str, call_id: str) -> bytes:
    return (
        f"MESSAGE sip:{to}@{DOMAIN} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call_id};rport\r\n"
        f"Max-Forwards: 70\r\nTo: <sip:{to}@{DOMAIN}>\r\n"
        f"From: <sip:caller@{DOMAIN}>;tag=c1\r\nCall-ID: {call_id}\r\n"
        f"CSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
    ).encode()


def answer_200(request: bytes) -> bytes:
    """The callee's 200 to ``request``: its Via, From, To (tagged), Call-ID and CSeq."""
    head = request.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")[1:]
    keep = [h for h in head if h.split(":", 1)[0].lower() in ("via", "from", "call-id", "cseq")]
    to = next(h for h in head if h.lower().startswith("to:"))
    return ("SIP/2.0 200 OK\r\n" + "\r\n".join([*keep, f"{to};tag=callee"])).encode() + (
        b"\r\nContent-Length: 0\r\n\r\n"
    )


def test_a_request_to_an_alias_reaches_the_account_through_every_member(
    farm: LoopbackFarm,
) -> None:
    m1, m2 = farm.members["m1"], farm.members["m2"]
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as bob,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as caller,
    ):
        for sock in (bob, caller):
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(5)
        assert register(bob, m1.sip, "bob") == "SIP/2.0 200 OK"
        status, body, _ = api(
            m2, "PUT", f"/domains/{DOMAIN}/accounts/bob/aliases", {"aliases": ["robert"]}
        )
        assert (status, body) == (200, {"aliases": ["robert"]})
        port = caller.getsockname()[1]
        for i, m in enumerate((m1, m2, m1, m2)):  # Call-IDs owned by either member
            call_id = f"alias-{i}-{os.getpid()}"
            caller.sendto(message(port, "robert", call_id), m.sip)
            request, hop = bob.recvfrom(65535)
            assert request.startswith(b"MESSAGE sip:bob@127.0.0.1:"), request[:80]
            assert f"Call-ID: {call_id}".encode() in request
            bob.sendto(answer_200(request), hop)
            while True:
                data, _ = caller.recvfrom(65535)
                if f"Call-ID: {call_id}".encode() in data and not data.startswith(b"SIP/2.0 1"):
                    break
            assert data.startswith(b"SIP/2.0 200"), data[:80]
        caller.sendto(message(port, "nobody", f"none-{os.getpid()}"), m1.sip)
        while True:
            data, _ = caller.recvfrom(65535)
            if not data.startswith(b"SIP/2.0 1"):
                break
        assert data.startswith(b"SIP/2.0 404"), data[:80]


def test_a_foldering_switch_through_the_api_while_phones_register_and_are_looked_up(
    farm: LoopbackFarm,
) -> None:
    """Issue 6: 0 failed lookups during a foldering switch, in a serving farm: every query
    through either member lists the phone's binding, every refresh is acknowledged, while
    the controller moves the domain's accounts (account foldering, fast storage, then the
    store's domain foldering)."""
    m1, m2 = farm.members["m1"], farm.members["m2"]
    names = [f"mover{i}" for i in range(40)] + ["élodie"]
    store = AccountStore(farm.data)
    for name in names:
        store.add_account(name, DOMAIN, "pw")
    users = [quote(name) for name in names]  # as a phone writes it in a SIP URI
    failures: list[str] = []
    done = [0]
    stop = threading.Event()

    def phone(member: Proc, mine: list[str]) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(5)
            port = sock.getsockname()[1]
            for user in mine:
                if (answer := register(sock, member.sip, user)) != "SIP/2.0 200 OK":
                    failures.append(f"register {user}: {answer}")
            others = [m1, m2]
            while not stop.is_set():
                for n, user in enumerate(mine):
                    try:
                        found = contacts(sock, others[n % 2].sip, user)
                        if not any(f"127.0.0.1:{port}>" in c for c in found):
                            failures.append(f"{user} not listed: {found}")
                        if n % 5 == 0 and register(sock, member.sip, user) != "SIP/2.0 200 OK":
                            failures.append(f"refresh {user} refused")
                    except (OSError, AssertionError) as exc:
                        failures.append(f"{user}: {exc!r}")
                    done[0] += 1

    threads = [
        threading.Thread(target=phone, args=(m1, users[::2])),
        threading.Thread(target=phone, args=(m2, users[1::2])),
    ]
    for t in threads:
        t.start()
    try:
        until(lambda: done[0] >= len(users), timeout=30, what="the phones registered")
        before = done[0]
        steps = [
            {"account_foldering": "1/1", "fast_storage": 2},
            {"domain_foldering": "1"},
            {"account_foldering": "none", "fast_storage": 0, "domain_foldering": "none"},
        ]
        for step in steps:
            status, body, _ = api(m2, "PATCH", f"/domains/{DOMAIN}", step)
            assert status == 200, body
            assert body is not None and body["moves"], body
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert failures == []
    assert done[0] - before > len(users)  # lookups ran during the moves
    assert store.accounts(DOMAIN) == sorted(["bob", *names])
