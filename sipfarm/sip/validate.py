"""What a UAS or proxy checks once a request has parsed (RFC 3261 §8.2.1 to §8.2.3, §16.3)."""

from __future__ import annotations

import re
from collections.abc import Collection

from .errors import BadExtension, BadRequest, TooManyHops, UnsupportedUriScheme
from .message import Request
from .via import MAGIC_COOKIE

__all__ = ["SCHEMES", "validate_request"]

#: RFC 3261 §20.17 / RFC 1123: ``Date: Sat, 13 Nov 2010 23:29:00 GMT`` (GMT only).
_DATE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    r"[0-9]{2}:[0-9]{2}:[0-9]{2} GMT\Z"
)

#: Request-URI schemes the server serves (§8.2.2.1: others get 416).
SCHEMES = frozenset({"sip", "sips", "tel"})


def validate_request(request: Request, supported: Collection[str] = ()) -> None:
    """Raise the SipError a request that parsed still earns, or return.

    - CSeq method differs from the request method: 400 (§8.1.1.5);
    - Request-URI scheme not sip/sips/tel: 416 (§8.2.2.1);
    - Require with an option tag not in ``supported``: 420 + Unsupported
      (§8.2.2.3; not for ACK and CANCEL);
    - Max-Forwards 0 on anything but OPTIONS: 483 (§16.3 step 3; OPTIONS is
      answered by the server itself, §11);
    - a top Via branch that is the bare magic cookie: 400 (RFC 4475 §3.2.1: no
      transaction identifier, and not an RFC 2543 client either);
    - a Date that is not an RFC 1123 date in GMT: 400 (§20.17).
    """
    if request.cseq.method != request.method:
        raise BadRequest("CSeq method does not match the request method")
    if request.uri.scheme not in SCHEMES:
        raise UnsupportedUriScheme()
    if request.method not in ("ACK", "CANCEL") and "require" in request.headers:
        low = {s.lower() for s in supported}
        unknown = [t for t in request.headers.tokens("require") if t.lower() not in low]
        if unknown:
            raise BadExtension(unknown)
    if request.max_forwards == 0 and request.method != "OPTIONS":
        raise TooManyHops()
    if request.via[0].branch == MAGIC_COOKIE:
        raise BadRequest("Via branch without a transaction identifier")
    date = request.headers.get("date")
    if date is not None and _DATE.match(date) is None:
        raise BadRequest("Bad Date (RFC 1123, GMT)")
