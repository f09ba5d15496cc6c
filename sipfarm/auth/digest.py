"""Digest authentication of SIP requests, server side (RFC 3261 §22, RFC 7616, RFC 8760).

:class:`DigestAuth` writes challenges (``WWW-Authenticate`` for a 401,
``Proxy-Authenticate`` for a 407) and judges a request's credentials into a
:class:`Verdict`; the caller turns the verdict into the answer:

=========== ==========================================================================
ACCEPT      go on with the request
CHALLENGE   401/407 with :meth:`DigestAuth.challenge` (no credentials for the realm,
            or a nonce that is not ours)
STALE       401/407 with ``challenge(..., stale=True)``: right password, nonce too old
            or its count replayed; the client retries with the new nonce unprompted
FORBIDDEN   403: unknown user, or a wrong digest on a fresh nonce (no 401 loop)
BAD_REQUEST 400 with ``reason`` as the phrase
=========== ==========================================================================

The ``uri`` of the credentials is not compared with the Request-URI (RFC 7616
§3.4.6 has the server check it): the response digest covers it, so it cannot be
changed in flight, and real clients differ from the Request-URI there (SIPp 3.6
writes ``sip:<server ip>:<port>``; a proxy before us may have rewritten the
Request-URI).  Kamailio's auth module does not compare it either.

Algorithms: MD5 and SHA-256 (RFC 8760), each also as ``-sess``; qop ``auth``, and no
qop at all (RFC 2069) for old phones.  ``auth-int`` and ``userhash`` are refused
with 400.  Nonces are stateless and farm-wide (:mod:`sipfarm.auth.nonce`).

Replays: the highest ``nc`` per nonce is kept in a table of this member only
(:mod:`sipfarm.auth.noncecount`, which says why); a request whose count is not
higher is answered STALE, except an exact retransmission of the request that set
the count (same nonce, count, header field values and body: a UA resending the
REGISTER whose 200 was lost, which no server transaction absorbs).  Exact means
every header value, not only Call-ID and CSeq: digest does not cover Contact, so a
looser match would let a sniffed REGISTER be replayed with another Contact.  A
request without qop has no count; it is counted as 0, so its nonce serves one
request (and that request's retransmissions).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import NamedTuple

from sipfarm.sip import AuthValue, Request, SipError
from sipfarm.sip.grammar import quote

from .credentials import read_credentials
from .nonce import CLOCK_SKEW, NONCE_LIFETIME, Freshness, Nonces
from .noncecount import MAX_NONCES, NonceCounts

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "AuthResult",
    "DigestAuth",
    "HA1Lookup",
    "Verdict",
    "digest_response",
]

HA1Lookup = Callable[[str, str], str | None]
"""``ha1_of(username, algorithm)``: the hex HA1 (RFC 7616 §3.4.2) of ``username`` in the
realm being checked, for ``algorithm`` "MD5" or "SHA-256"; None for an unknown user."""


class Algorithm(NamedTuple):
    """One RFC 7616 §3.3 algorithm: its hash, and whether it is a ``-sess`` variant."""

    name: str  # as RFC 7616 §6.1 spells it
    base: str  # the HA1 the account store holds for it
    hash: Callable[[bytes], hashlib._Hash]
    sess: bool
    hex_len: int


#: RFC 7616 §6.1 algorithms we answer, by upper-case name.
ALGORITHMS: dict[str, Algorithm] = {
    a.name.upper(): a
    for a in (
        Algorithm("MD5", "MD5", hashlib.md5, False, 32),
        Algorithm("MD5-sess", "MD5", hashlib.md5, True, 32),
        Algorithm("SHA-256", "SHA-256", hashlib.sha256, False, 64),
        Algorithm("SHA-256-sess", "SHA-256", hashlib.sha256, True, 64),
    )
}

_HEX = frozenset("0123456789abcdefABCDEF")
_AUTHORIZATION = {False: "authorization", True: "proxy-authorization"}


class Verdict(enum.Enum):
    ACCEPT = "accept"
    CHALLENGE = "challenge"
    STALE = "stale"
    FORBIDDEN = "forbidden"
    BAD_REQUEST = "bad request"


class AuthResult(NamedTuple):
    verdict: Verdict
    #: the username of the credentials judged, when they named one
    username: str | None
    #: short text for the log, and the reason phrase of a 400
    reason: str


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def digest_response(
    algorithm: str,
    ha1: str,
    nonce: str,
    method: str,
    uri: str,
    *,
    qop: str | None = None,
    nc: str = "",
    cnonce: str = "",
) -> str:
    """The ``response`` of RFC 7616 §3.4.1 (RFC 2069 form when ``qop`` is None).

    ``ha1`` is ``H(username:realm:password)`` in hex; for a ``-sess`` algorithm this
    derives the session HA1 (RFC 7616 §3.4.2).  Raises UnicodeEncodeError for text
    that is not UTF-8 (lone surrogates outside ``surrogateescape``'s range).
    """
    alg = ALGORITHMS[algorithm.upper()]
    h = alg.hash
    if alg.sess:
        ha1 = h(_encode(f"{ha1}:{nonce}:{cnonce}")).hexdigest()
    ha2 = h(_encode(f"{method}:{uri}")).hexdigest()
    tail = ha2 if qop is None else f"{nc}:{cnonce}:{qop}:{ha2}"
    return h(_encode(f"{ha1}:{nonce}:{tail}")).hexdigest()


def _fingerprint(request: Request) -> int:
    """Equal for a retransmission of ``request``; its header values and body, hashed."""
    return hash((tuple([f[1] for f in request.headers]), request.body))


class DigestAuth:
    """Challenges and the verification of credentials under one farm-wide secret.

    ``algorithms`` are offered in their order, one challenge each (RFC 8760 §2.4:
    most preferred first); credentials with any other algorithm are refused.
    ``qop=False`` leaves ``qop`` out of challenges (credentials with ``qop=auth`` are
    still accepted).  The per-member nonce-count table holds at most ``max_nonces``
    entries.  ``random(n)`` gives the random bytes of nonces.
    """

    __slots__ = ("_algorithms", "_counts", "_nonces", "_qop")

    def __init__(
        self,
        secret: bytes,
        *,
        algorithms: tuple[str, ...] = ("MD5", "SHA-256"),
        nonce_lifetime: float = NONCE_LIFETIME,
        qop: bool = True,
        clock_skew: float = CLOCK_SKEW,
        max_nonces: int = MAX_NONCES,
        random: Callable[[int], bytes] = secrets.token_bytes,
    ):
        if not algorithms:
            raise ValueError("at least one digest algorithm is needed")
        chosen: dict[str, Algorithm] = {}
        for name in algorithms:
            alg = ALGORITHMS.get(name.upper())
            if alg is None:
                known = ", ".join(a.name for a in ALGORITHMS.values())
                raise ValueError(f"unknown digest algorithm {name!r} (known: {known})")
            if alg.name.upper() in chosen:
                raise ValueError(f"digest algorithm {name!r} given twice")
            chosen[alg.name.upper()] = alg
        self._algorithms = chosen
        self._qop = qop
        self._nonces = Nonces(secret, lifetime=nonce_lifetime, skew=clock_skew, random=random)
        self._counts = NonceCounts(lifetime=nonce_lifetime, skew=clock_skew, max_nonces=max_nonces)

    def challenge(self, realm: str, now: float, *, stale: bool = False) -> tuple[str, ...]:
        """The WWW-Authenticate / Proxy-Authenticate values, one per algorithm (RFC 7616 §3.3).

        They share one nonce: a client answers one of them.
        """
        nonce = self._nonces.mint(realm, now)
        head: tuple[tuple[str, str], ...] = (("realm", quote(realm)), ("nonce", quote(nonce)))
        tail: tuple[tuple[str, str], ...] = (("qop", '"auth"'),) if self._qop else ()
        if stale:
            tail += (("stale", "true"),)
        return tuple(
            str(AuthValue("Digest", (*head, ("algorithm", alg.name), *tail)))
            for alg in self._algorithms.values()
        )

    def verify(
        self,
        request: Request,
        realm: str,
        now: float,
        ha1_of: HA1Lookup,
        *,
        proxy: bool,
    ) -> AuthResult:
        """Judge the credentials for ``realm`` in Authorization (Proxy-Authorization if ``proxy``).

        Never raises for what the request holds; ``ha1_of``'s own errors pass through.
        """
        lines = request.headers.get_all_key(_AUTHORIZATION[proxy])
        broken = None
        for line in lines:
            try:
                scheme, params = read_credentials(line)
            except SipError as exc:  # perhaps another realm's, in a syntax we do not read
                broken = exc.reason
                continue
            if params.get("realm") == realm and scheme.lower() == "digest":
                return self._judge(params, request, realm, now, ha1_of)
        if broken is not None:
            return AuthResult(Verdict.BAD_REQUEST, None, broken)
        return AuthResult(Verdict.CHALLENGE, None, "No credentials for the realm")

    def _judge(
        self,
        p: dict[str, str],
        request: Request,
        realm: str,
        now: float,
        ha1_of: HA1Lookup,
    ) -> AuthResult:
        """RFC 7616 §3.4 for one set of credentials."""
        bad = Verdict.BAD_REQUEST
        username = p.get("username")
        if username is None:
            why = "Userhash not supported" if "username*" in p else "Missing username"
            return AuthResult(bad, None, why)
        nonce = p.get("nonce")
        uri = p.get("uri")
        response = p.get("response")
        if nonce is None or uri is None or response is None:
            what = "nonce" if nonce is None else "uri" if uri is None else "response"
            return AuthResult(bad, username, f"Missing {what}")
        alg = self._algorithms.get(p.get("algorithm", "MD5").upper())
        if alg is None:
            return AuthResult(bad, username, "Unsupported algorithm")
        userhash = p.get("userhash")
        if userhash is not None and userhash.lower() != "false":
            return AuthResult(bad, username, "Userhash not supported")
        qop = p.get("qop")
        nc = 0
        nc_text = cnonce = ""
        if qop is not None:
            if qop.lower() != "auth":
                why = "Qop auth-int not supported" if qop.lower() == "auth-int" else "Bad qop"
                return AuthResult(bad, username, why)
            nc_text = p.get("nc", "")
            if len(nc_text) != 8 or not _HEX.issuperset(nc_text):
                return AuthResult(bad, username, "Bad nc")
            nc = int(nc_text, 16)
            if nc == 0:
                return AuthResult(bad, username, "Bad nc")
            cnonce = p.get("cnonce", "")
            if not cnonce:
                return AuthResult(bad, username, "Missing cnonce")
        elif alg.sess:
            return AuthResult(bad, username, "Session algorithm without qop")
        if len(response) != alg.hex_len or not _HEX.issuperset(response):
            return AuthResult(bad, username, "Bad response")

        check = self._nonces.check(nonce, realm, now)
        if check.freshness is Freshness.INVALID:
            return AuthResult(Verdict.CHALLENGE, username, "Unknown nonce")
        ha1 = ha1_of(username, alg.base)
        if ha1 is None:
            return AuthResult(Verdict.FORBIDDEN, username, "Unknown user")
        try:
            expected = digest_response(
                alg.name, ha1, nonce, request.method, uri, qop=qop, nc=nc_text, cnonce=cnonce
            )
        except UnicodeEncodeError:
            return AuthResult(bad, username, "Bad characters in credentials")
        right = hmac.compare_digest(expected, response.lower())
        if check.freshness is Freshness.STALE:
            # RFC 7616 §3.3: stale=true only when the digest was right for the old nonce
            if right:
                return AuthResult(Verdict.STALE, username, "Stale nonce")
            return AuthResult(Verdict.CHALLENGE, username, "Stale nonce, wrong digest")
        if not right:
            return AuthResult(Verdict.FORBIDDEN, username, "Wrong digest")
        if not self._counts.admit(nonce, check.issued, nc, _fingerprint(request), now):
            return AuthResult(Verdict.STALE, username, "Nonce count replayed")
        return AuthResult(Verdict.ACCEPT, username, "Accepted")
