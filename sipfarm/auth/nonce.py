"""Stateless nonces that every member of a farm can verify (RFC 7616 §3.3, §5.4, §5.5).

A nonce is minted by one member and answered to whichever member the farm's L4
address sends the next request to, so it carries its own proof instead of living in
a table: the urlsafe base64 (no padding) of

    8 bytes   issue time, milliseconds since the epoch, big-endian
    8 bytes   random
    16 bytes  HMAC-SHA256(secret, time | random | realm), truncated

43 characters, all of them safe inside a quoted-string.  Any member holding the
farm-wide secret checks the tag (in constant time) and reads the age.  The time is
wall-clock (``time.time()``) because it is compared across members; a member whose
clock runs ahead by up to ``skew`` seconds still has its nonces accepted.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import NamedTuple

__all__ = ["CLOCK_SKEW", "NONCE_LIFETIME", "Freshness", "NonceCheck", "Nonces"]

#: Seconds a nonce stays fresh; older ones are answered ``stale=true`` (RFC 7616 §3.3).
NONCE_LIFETIME = 300.0
#: Seconds a nonce's issue time may lie in the future (clocks of members differ).
CLOCK_SKEW = 5.0
#: Shortest farm secret accepted: the HMAC key (RFC 2104 §3 asks at least the hash's
#: output length; 16 bytes is the floor we refuse below).
MIN_SECRET = 16

_TIME_BYTES = 8
_RANDOM_BYTES = 8
_TAG_BYTES = 16
_STAMP_BYTES = _TIME_BYTES + _RANDOM_BYTES
_RAW_BYTES = _STAMP_BYTES + _TAG_BYTES
#: Characters of the text form: base64 of 32 bytes without its one "=".
NONCE_CHARS = 43
#: The last character carries 2 bits past the 256: they are zero, so one text per nonce.
_LAST_CHARS = frozenset("AEIMQUYcgkosw048")


class Freshness(enum.Enum):
    """What a nonce is worth now."""

    FRESH = "fresh"  # ours, within its lifetime
    STALE = "stale"  # ours, older than its lifetime
    INVALID = "invalid"  # not ours: bad form, bad tag, other realm or secret, or from the future


class NonceCheck(NamedTuple):
    freshness: Freshness
    #: issue time in seconds (0.0 when INVALID)
    issued: float


_INVALID = NonceCheck(Freshness.INVALID, 0.0)
#: urlsafe to standard base64; "+" and "/" become junk the decoder drops (short, so invalid)
_FROM_URLSAFE = bytes.maketrans(b"-_+/", b"+/!!")


class Nonces:
    """Mint and check nonces under one farm-wide secret.

    ``random(n)`` returns ``n`` random bytes (``secrets.token_bytes`` unless a test
    injects a generator).
    """

    __slots__ = ("_mac", "_random", "lifetime", "skew")

    def __init__(
        self,
        secret: bytes,
        *,
        lifetime: float = NONCE_LIFETIME,
        skew: float = CLOCK_SKEW,
        random: Callable[[int], bytes] = secrets.token_bytes,
    ):
        if len(secret) < MIN_SECRET:
            raise ValueError(f"nonce secret must be at least {MIN_SECRET} bytes")
        if not lifetime > 0:
            raise ValueError("nonce lifetime must be positive")
        if not skew >= 0:
            raise ValueError("clock skew must not be negative")
        self._mac = hmac.new(secret, digestmod=hashlib.sha256)
        self._random = random
        self.lifetime = lifetime
        self.skew = skew

    def _tag(self, stamp: bytes, realm: str) -> bytes:
        mac = self._mac.copy()  # the keyed state, without hashing the key again
        mac.update(stamp)
        mac.update(realm.encode("utf-8", "surrogateescape"))
        return mac.digest()[:_TAG_BYTES]

    def mint(self, realm: str, now: float) -> str:
        """A new nonce for ``realm``, issued at ``now`` (seconds since the epoch)."""
        stamp = int(now * 1000).to_bytes(_TIME_BYTES, "big") + self._random(_RANDOM_BYTES)
        if len(stamp) != _STAMP_BYTES:
            raise ValueError("the random generator returned the wrong number of bytes")
        raw = stamp + self._tag(stamp, realm)
        return base64.urlsafe_b64encode(raw)[:NONCE_CHARS].decode("ascii")

    def check(self, nonce: str, realm: str, now: float) -> NonceCheck:
        """Whether ``nonce`` was minted for ``realm`` under our secret, and how old it is."""
        if len(nonce) != NONCE_CHARS or nonce[-1] not in _LAST_CHARS:
            return _INVALID
        try:
            raw = binascii.a2b_base64(nonce.encode("ascii").translate(_FROM_URLSAFE) + b"=")
        except ValueError:  # non-ASCII text (UnicodeEncodeError), bad padding (binascii.Error)
            return _INVALID
        # the decoder skips characters outside the alphabet: a short result says so
        if len(raw) != _RAW_BYTES:
            return _INVALID
        stamp = raw[:_STAMP_BYTES]
        if not hmac.compare_digest(self._tag(stamp, realm), raw[_STAMP_BYTES:]):
            return _INVALID
        issued = int.from_bytes(stamp[:_TIME_BYTES], "big") / 1000
        age = now - issued
        if age < -self.skew:
            return _INVALID
        if age > self.lifetime:
            return NonceCheck(Freshness.STALE, issued)
        return NonceCheck(Freshness.FRESH, issued)
