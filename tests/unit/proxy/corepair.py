"""A SipCore on literal messages: a directory in memory, time as a number, sends collected."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mail.api import AccountRecord
from mail.settings import digests
from sipfarm.actions import Send, Source
from sipfarm.auth import digest_response
from sipfarm.core import CoreConfig, SipCore
from sipfarm.registrar import MemoryLocation
from sipfarm.sip import Request, Response, parse

ME = ("192.0.2.10", 5060)
CALLER = Source("UDP", "198.51.100.1", 5060)
CALLEE = ("198.51.100.2", 5070)
CALLEE2 = ("198.51.100.3", 5070)


class Accounts:
    """``has_domain`` / ``account`` / ``canonical`` over a dict: the Directory port."""

    def __init__(self, domain: str = "example.com", users: tuple[str, ...] = ()) -> None:
        self.domain = domain
        self.records = {
            u: AccountRecord(u, domain, domain, digests(u, domain, "secret")) for u in users
        }

    def has_domain(self, domain: str) -> bool:
        return domain.lower() == self.domain

    def account(self, user: str, domain: str) -> AccountRecord | None:
        return self.records.get(user) if domain.lower() == self.domain else None

    def canonical(self, user: str, domain: str) -> str | None:
        """No aliases here (mail.directory.Directory has them)."""
        record = self.account(user, domain)
        return None if record is None else record.user


@dataclass
class Pair:
    """The core and what it sent, with the clock the test moves."""

    core: SipCore
    now: float = 1_800_000_000.0
    sent: list[Send] = field(default_factory=list)

    def feed(self, text: str, source: Source = CALLER) -> list[Send]:
        out = self.core.receive(wire(text), source, self.now)
        assert isinstance(out, list), out
        self.sent += out
        return out

    def feed_bytes(self, data: bytes, source: Source) -> list[Send]:
        out = self.core.receive(data, source, self.now)
        assert isinstance(out, list), out
        self.sent += out
        return out

    def advance(self, seconds: float) -> list[Send]:
        out: list[Send] = []
        end = self.now + seconds
        while True:
            deadline = self.core.next_deadline()
            if deadline is None or deadline > end:
                break
            self.now = max(self.now, deadline)
            out += self.core.advance(self.now)
        self.now = end
        self.sent += out
        return out


def make_core(
    *,
    trusted: tuple[str, ...] = (),
    users: tuple[str, ...] = ("alice", "bob"),
    token: str = "m1",
    accounts: Accounts | None = None,
) -> Pair:
    """A member's core; every core made here shares the farm-wide nonce secret, so two
    of them with two tokens stand for two members of one farm."""
    config = CoreConfig(
        token=token, advertise=ME, secret=b"s" * 32, trusted=trusted, digest_algorithms=("MD5",)
    )
    return Pair(SipCore(config, accounts or Accounts(users=users), MemoryLocation()))


def authorization(challenge: bytes, user: str, method: str, uri: str) -> str:
    """The Digest credentials (MD5, qop=auth, nc 1) of ``user`` (password ``secret``) that
    answer the 401/407 ``challenge`` for a ``method`` to ``uri``."""
    nonce = re.search(r'nonce="([^"]+)"', challenge.decode())
    assert nonce is not None, challenge
    ha1 = digests(user, "example.com", "secret")["MD5"]
    response = digest_response(
        "MD5", ha1, nonce[1], method, uri, qop="auth", nc="00000001", cnonce="c1"
    )
    return (
        f'Digest username="{user}", realm="example.com", nonce="{nonce[1]}", '
        f'uri="{uri}", response="{response}", algorithm=MD5, qop=auth, '
        f'nc=00000001, cnonce="c1"'
    )


def wire(text: str) -> bytes:
    """A literal message: lines stripped and joined with CRLF; the first empty line ends
    the head; Content-Length is filled in (a line of it in ``text`` is dropped)."""
    lines = [ln.strip() for ln in text.strip().split("\n")]
    blank = lines.index("") if "" in lines else len(lines)
    head = [ln for ln in lines[:blank] if not ln.lower().startswith("content-length")]
    body_lines = [ln for ln in lines[blank + 1 :] if ln]
    body = "".join(ln + "\r\n" for ln in body_lines)
    head.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode()


def msg(send: Send) -> Request | Response:
    return parse(send.data)


def status(send: Send) -> int:
    m = msg(send)
    assert isinstance(m, Response), m
    return m.status


def request(send: Send) -> Request:
    m = msg(send)
    assert isinstance(m, Request), m
    return m


def register(pair: Pair, user: str, contact: str, *, cseq: int = 1, expires: int = 3600) -> None:
    """Register ``contact`` for ``user`` from a trusted-looking flow: 401, then credentials."""
    call_id = f"reg-{user}-{contact}"
    base = f"""
        REGISTER sip:example.com SIP/2.0
        Via: SIP/2.0/UDP 198.51.100.9:5060;branch=z9hG4bKreg{cseq}{user}
        Max-Forwards: 70
        From: <sip:{user}@example.com>;tag=r{user}
        To: <sip:{user}@example.com>
        Call-ID: {call_id}
        CSeq: {cseq} REGISTER
        Contact: <{contact}>
        Expires: {expires}
        """
    source = Source("UDP", "198.51.100.9", 5060)
    (answer,) = pair.feed(base, source)
    if status(answer) == 200:
        return
    assert status(answer) == 401
    auth = authorization(answer.data, user, "REGISTER", "sip:example.com")
    retry = base.replace(f"branch=z9hG4bKreg{cseq}{user}", f"branch=z9hG4bKreg{cseq}{user}b")
    retry = retry.replace(f"CSeq: {cseq} REGISTER", f"CSeq: {cseq + 1} REGISTER")
    retry = retry.rstrip() + f"\nAuthorization: {auth}\n"
    (ok,) = pair.feed(retry, source)
    assert status(ok) == 200, ok.data
