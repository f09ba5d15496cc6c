"""Digest authentication, sans-IO (RFC 3261 §22, RFC 7616, RFC 8760), and trusted sources.

Values in, verdicts out: no clock (``now`` is an argument, wall-clock seconds), no
I/O, no logging.  :class:`DigestAuth` writes challenges and judges credentials with
farm-wide stateless nonces (:class:`Nonces`); :class:`TrustedSources` says whether a
peer address is exempt from authentication.
"""

from .digest import (
    ALGORITHMS,
    Algorithm,
    AuthResult,
    DigestAuth,
    HA1Lookup,
    Verdict,
    digest_response,
)
from .nonce import CLOCK_SKEW, NONCE_LIFETIME, Freshness, NonceCheck, Nonces
from .noncecount import MAX_NONCES, NonceCounts
from .trusted import TrustedSources

__all__ = [
    "ALGORITHMS",
    "CLOCK_SKEW",
    "MAX_NONCES",
    "NONCE_LIFETIME",
    "Algorithm",
    "AuthResult",
    "DigestAuth",
    "Freshness",
    "HA1Lookup",
    "NonceCheck",
    "NonceCounts",
    "Nonces",
    "TrustedSources",
    "Verdict",
    "digest_response",
]
