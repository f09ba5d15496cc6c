"""Two farm members on loopback with a real etcd: relays, bindings with their owner, failover.

No balancer here (tests/farm/ has one): the test's phone sends to one member
on its own address, and the farm must behave as one server behind it:

- a REGISTER lands on either member and is served by the owner of its AOR
  (relayed over the cluster link); the 200 OK comes back from the member the
  phone sent to (the Emit back to the receiving member);
- every acknowledged binding is on the shared storage, and the surviving member
  serves it after the owner is killed with SIGKILL;
- a member drained with POST /not-ready leaves the ring and its AORs move.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from farm_proc import Proc, contacts, loopback_farm, register, until
from sipp import fresh_loopback
from sippcalls import DOMAIN, Sipp, make_data, write_csv

from cluster.etcdproc import free_port
from cluster.ring import Ring
from sipfarm.router import INVITE_HANDOFF

ACCOUNTS = {f"u{i}": "pw" for i in range(40)}


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[tuple[list[Proc], Path]]:
    data = make_data(tmp_path / "data", ACCOUNTS, DOMAIN)
    with loopback_farm(tmp_path, data, ("m1", "m2")) as started:
        yield list(started.members.values()), data


def test_registrations_live_with_their_owner_and_survive_its_death(
    farm: tuple[list[Proc], Path],
) -> None:
    procs, data = farm
    m1, m2 = procs
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        for user in ACCOUNTS:  # all through m2: about half belong to m1
            assert register(sock, (m2.host, 5060), user) == "SIP/2.0 200 OK"
        s1, s2 = m1.status()["counters"], m2.status()["counters"]
        print(f"m2 relayed {s2.get('relayed_out', 0)}, m1 emitted {s1.get('emitted', 0)}")
        assert s2.get("relayed_out", 0) > 5 and s1.get("relayed_in", 0) > 5
        assert s1.get("emitted", 0) == s2.get("relayed_out", 0)  # answers left through m2
        assert s1["bindings"] + s2["bindings"] == len(ACCOUNTS)
        for user in ACCOUNTS:  # on storage before the 200 OK
            info = data / "SharedDomains" / DOMAIN / f"{user}.macnt" / "account.info"
            assert json.loads(info.read_text())["bindings"], user
        for user in list(ACCOUNTS)[:10]:  # a query through either member finds it
            assert len(contacts(sock, (m1.host, 5060), user)) == 1
            assert len(contacts(sock, (m2.host, 5060), user)) == 1

        m1.process.send_signal(signal.SIGKILL)
        m1.process.wait()
        until(lambda: m2.status()["view"]["ring"] == ["m2"], what="m1 out of the view")
        lost = [u for u in ACCOUNTS if len(contacts(sock, (m2.host, 5060), u)) != 1]
        print(f"after kill -9 of m1: {len(ACCOUNTS)} checked, {len(lost)} lost")
        assert lost == []


def test_a_drained_member_leaves_the_ring_and_its_aors_move(
    farm: tuple[list[Proc], Path],
) -> None:
    procs, _ = farm
    m1, m2 = procs
    m1.post("/not-ready")
    until(lambda: m2.status()["view"]["ring"] == ["m2"], what="m1 out of the ring")
    assert m1.status()["state"] == "not-ready"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        before = m2.status()["counters"].get("relayed_in", 0)
        for user in list(ACCOUNTS)[:10]:  # sent to the drained member: served by m2
            assert register(sock, (m1.host, 5060), user) == "SIP/2.0 200 OK"
        assert m2.status()["counters"].get("relayed_in", 0) - before == 10
    m1.post("/ready")
    until(lambda: m2.status()["view"]["ring"] == ["m1", "m2"], what="m1 back in the ring")
    # Each ring change was fenced: the member that gained AORs asked the other to confirm
    # the view before writing them (m2 when m1 left, m1 when it came back), and got it.
    until(lambda: m1.status()["counters"].get("fences", 0) >= 1, what="m1's fence")
    c1, c2 = m1.status()["counters"], m2.status()["counters"]
    assert c2.get("fences", 0) >= 2 and not c2.get("fence_timeouts")
    assert not c1.get("fence_timeouts")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        port = sock.getsockname()[1]
        for user in ACCOUNTS:  # every AOR is served by its owner again, through either
            assert register(sock, (m2.host, 5060), user) == "SIP/2.0 200 OK"
            found = contacts(sock, (m1.host, 5060), user)
            assert any(f"@127.0.0.1:{port}>" in c for c in found), found


def test_calls_between_phones_registered_on_different_members(
    farm: tuple[list[Proc], Path], tmp_path: Path
) -> None:
    """The callee registers through m2, the caller calls through m1: each INVITE is placed
    by its Call-ID, the callee's bindings come from their owner, answers flow back."""
    procs, _ = farm
    m1, m2 = procs
    calls = 20
    time.sleep(INVITE_HANDOFF)  # new INVITEs then go to their owner on the ring of two
    port = free_port(m2.host)
    callee = write_csv(tmp_path / "callee.csv", [["u1", DOMAIN, "pw", f"u1@{m2.host}:{port}"]])
    registration = Sipp(
        tmp_path / "register", "register_contact", m2.host, target=f"{m2.host}:5060",
        local_port=port, extra=["-inf", str(callee), "-auth_uri", DOMAIN],
    )  # fmt: skip
    assert registration.finish().successful == 1, registration.messages()[-3000:]
    callee_side = Sipp(tmp_path / "uas", "call_uas", m2.host, local_port=port, calls=calls)
    callee_side.wait_bound()
    caller = write_csv(tmp_path / "calls.csv", [["u2", DOMAIN, "pw", "u1"]])
    caller_side = Sipp(
        tmp_path / "uac", "call_uac", m1.host, target=f"{m1.host}:5060", calls=calls, rate=20,
        extra=["-inf", str(caller), "-d", "300", "-auth_uri", f"u1@{DOMAIN}",
               "-t", "un", "-max_socket", "100"],
    )  # fmt: skip
    uac, uas = caller_side.finish(), callee_side.finish()
    context = (
        f"=== UAC ===\n{caller_side.messages()[-3000:]}\n"
        f"=== UAS ===\n{callee_side.messages()[-3000:]}\n"
        f"=== m1 ===\n{m1.log.read_text()[-2000:]}\n=== m2 ===\n{m2.log.read_text()[-2000:]}"
    )
    s1, s2 = m1.status()["counters"], m2.status()["counters"]
    print(f"calls {uac.successful}/{calls}")
    print("m1", {k: v for k, v in s1.items() if v})
    print("m2", {k: v for k, v in s2.items() if v})
    assert (uac.successful, uac.failed) == (calls, 0), f"{uac}\n{context}"
    assert (uas.successful, uas.failed) == (calls, 0), f"{uas}\n{context}"
    # the calls were relayed to their Call-ID's owner (or its predecessor's in the
    # hand-off window after m2 joined), and whoever did not own the callee asked
    assert s1.get("relayed_out", 0) + s2.get("relayed_out", 0) >= calls
    assert s1.get("lookups_sent", 0) + s2.get("lookups_sent", 0) > 0


def _link(member: Proc, peer: str) -> bool:
    """Whether ``member`` has its link to ``peer`` up (the view may still show ``peer``)."""
    peers = member.status()["view"]["members"]
    return bool(peers.get(peer, {}).get("link"))


def _wait(sock: socket.socket, want: bytes, seconds: float = 5.0) -> tuple[bytes, tuple[str, int]]:
    """The next datagram on ``sock`` that starts with ``want`` (others are skipped)."""
    deadline = time.monotonic() + seconds
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        data, sender = sock.recvfrom(65535)
        if data.startswith(want):
            return data, sender


def _header(data: bytes, name: bytes) -> bytes:
    for line in data.split(b"\r\n"):
        if line.lower().startswith(name.lower() + b":"):
            return line.split(b":", 1)[1].strip()
    raise AssertionError(f"no {name!r} in {data[:300]!r}")


def _request(
    call_id: str,
    ap: int,
    bp: int,
    method: str,
    cseq: int,
    branch: str,
    to_tag: str = "",
    route: bytes = b"",
) -> bytes:
    """A request of the caller on port ``ap`` to u1, whose phone is on port ``bp``."""
    uri = f"sip:u1@127.0.0.1:{bp}" if to_tag else f"sip:u1@{DOMAIN}"
    return (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{ap};branch={branch};rport\r\n"
        + (f"Route: {route.decode()}\r\n" if route else "")
        + f"Max-Forwards: 70\r\nFrom: <sip:u2@{DOMAIN}>;tag=fa\r\n"
        f"To: <sip:u1@{DOMAIN}>{';tag=' + to_tag if to_tag else ''}\r\n"
        f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
        f"Contact: <sip:u2@127.0.0.1:{ap}>\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def _response(req: bytes, status: str, bp: int) -> bytes:
    """u1's answer (on port ``bp``) to ``req``, with its tag."""
    head = req.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    keep = [h for h in head if h.split(b":", 1)[0].lower() in
            (b"via", b"record-route", b"from", b"call-id", b"cseq")]  # fmt: skip
    to = _header(req, b"To")
    to += b"" if b";tag=" in to else b";tag=callee"
    contact = f"Contact: <sip:u1@127.0.0.1:{bp}>".encode()
    lines = [f"SIP/2.0 {status}".encode(), *keep, b"To: " + to, contact]
    lines.append(b"Content-Length: 0")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def test_acks_on_the_route_set_are_forwarded_where_they_land_but_a_non_2xx_one_is_relayed(
    tmp_path: Path,
) -> None:
    """The caller sends everything to m1, as a balancer would, and both members show one
    address (a VIP nothing listens on); its call's Call-ID belongs to m2.  The ACK of
    the 2xx is end to end: m1 forwards it to the callee itself.  The ACK of a 488 to a
    re-INVITE belongs to m2's INVITE server transaction: m1, which relayed that
    re-INVITE, relays its ACK there, and m2 stops retransmitting the 488."""
    data = make_data(tmp_path / "data", ACCOUNTS, DOMAIN)
    vip = fresh_loopback(5060)
    with loopback_farm(tmp_path, data, ("m1", "m2"), advertise=f"{vip}:5060") as started:
        m1, m2 = started.members["m1"], started.members["m2"]
        _reack(m1, m2)
        # the 488's ACK was relayed after its re-INVITE (the 2xx's ACK was forwarded)
        assert m1.status()["counters"].get("reinvite_acks_relayed") == 1


@contextlib.contextmanager
def _phones(
    m1: Proc, m2: Proc, name: str, owner: str
) -> Iterator[tuple[str, socket.socket, socket.socket]]:
    """A Call-ID that ``owner`` owns on the ring of two, the caller's socket and the
    callee's, the callee (u1) registered through m2."""
    time.sleep(INVITE_HANDOFF)  # new INVITEs then go to their owner on the ring of two
    ring = Ring(m1.ring())
    call_id = next(
        c for c in (f"{name}-{i}@127.0.0.1" for i in range(100)) if ring.owner(c) == owner
    )
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b,
    ):
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        b.settimeout(5)
        assert register(b, (m2.host, 5060), "u1") == "SIP/2.0 200 OK"
        yield call_id, a, b


def _reack(m1: Proc, m2: Proc) -> None:
    """The call, its ACK, the re-INVITE answered 488 and its ACK (see the test)."""
    with _phones(m1, m2, "reack", owner="m2") as (call_id, a, b):
        ap, bp = a.getsockname()[1], b.getsockname()[1]
        to_m1 = (m1.host, 5060)

        def request(
            method: str, cseq: int, branch: str, to_tag: str = "", route: bytes = b""
        ) -> bytes:
            return _request(call_id, ap, bp, method, cseq, branch, to_tag, route)

        def answer(req: bytes, status: str, sender: tuple[str, int]) -> None:
            b.sendto(_response(req, status, bp), sender)

        a.sendto(request("INVITE", 1, "z9hG4bK-reack-1"), to_m1)
        invite, m2_address = _wait(b, b"INVITE ")
        answer(invite, "200 OK", m2_address)
        ok, _ = _wait(a, b"SIP/2.0 200")
        route = _header(ok, b"Record-Route")
        assert b"member=m2" in route
        before = m1.status()["counters"]
        a.sendto(request("ACK", 1, "z9hG4bK-reack-ack1", "callee", route), to_m1)
        ack, sender = _wait(b, b"ACK ")
        assert _header(ack, b"CSeq") == b"1 ACK"
        # m1 forwarded it, and sent it out through m2, which holds the callee's flow
        # (b registered through m2: sipfarm/flows.py); the one-host farm's members share
        # their socket and send it themselves
        after = m1.status()["counters"]
        assert after.get("relayed_out", 0) == before.get("relayed_out", 0)
        assert after.get("emitted", 0) == before.get("emitted", 0) + 1
        assert sender[0] == m2.host

        a.sendto(request("INVITE", 2, "z9hG4bK-reack-2", "callee", route), to_m1)
        reinvite, m2_address = _wait(b, b"INVITE ")
        answer(reinvite, "488 Not Acceptable Here", m2_address)
        hop_ack, _ = _wait(b, b"ACK ")  # m2's client transaction acknowledges the 488
        assert _header(hop_ack, b"CSeq") == b"2 ACK"
        _wait(a, b"SIP/2.0 488")
        a.sendto(request("ACK", 2, "z9hG4bK-reack-2", "callee", route), to_m1)
        with pytest.raises(TimeoutError):  # no 488 again: the ACK reached its transaction
            _wait(a, b"SIP/2.0 488", 2.0)
        with pytest.raises(TimeoutError):  # and the callee did not get it a second time
            _wait(b, b"ACK ", 0.5)


@pytest.mark.parametrize("seen", ["link down", "view without m1"])
def test_an_invite_the_dead_owner_forwarded_reaches_the_callee_again_as_itself(
    tmp_path: Path, seen: str
) -> None:
    """The caller's INVITE lands on m2, whose Call-ID m1 owns: m1 forwards it, and is
    killed before anyone answers.  The caller's retransmission lands on m2 again, which
    serves it for m1 (out of reach, or, once the view has no m1, the owner before the
    change, which died): the callee gets the very bytes m1 sent, a retransmission
    (RFC 3261 §17.2.3 matches it to the transaction it has), not a second INVITE of
    the call.  Its 200 names m1 and comes back through m2 to the caller."""
    data = make_data(tmp_path / "data", ACCOUNTS, DOMAIN)
    vip = fresh_loopback(5060)
    with loopback_farm(tmp_path, data, ("m1", "m2"), advertise=f"{vip}:5060") as started:
        m1, m2 = started.members["m1"], started.members["m2"]
        with _phones(m1, m2, "dead", owner="m1") as (call_id, a, b):
            ap, bp = a.getsockname()[1], b.getsockname()[1]
            invite = _request(call_id, ap, bp, "INVITE", 1, "z9hG4bK-dead-1")
            a.sendto(invite, (m2.host, 5060))
            first, _ = _wait(b, b"INVITE ")
            assert b"member=m1" in _header(first, b"Record-Route")
            m1.process.send_signal(signal.SIGKILL)
            m1.process.wait()
            until(lambda: not _link(m2, "m1"), what="m2 hears m1's link go down")
            if seen == "view without m1":  # within INVITE_HANDOFF of the change
                until(lambda: m2.status()["view"]["ring"] == ["m2"], what="m1 out of the view")
            a.sendto(invite, (m2.host, 5060))  # the caller's retransmission (Timer A)
            again, sender = _wait(b, b"INVITE ")
            assert again == first  # byte for byte: the callee's transaction absorbs it
            assert m2.status()["counters"].get("served_for_another", 0) >= 1
            b.sendto(_response(again, "200 OK", bp), sender)
            ok, _ = _wait(a, b"SIP/2.0 200")
            assert _header(ok, b"Call-ID") == call_id.encode()
