"""CSeq (RFC 3261 §20.16, §8.1.1.5)."""

from __future__ import annotations

import re
from typing import NamedTuple

from .errors import BadRequest

__all__ = ["CSeq", "parse_cseq"]

#: RFC 3261 §8.1.1.5: the sequence number MUST be less than 2**31.
CSEQ_LIMIT = 2**31

_CSEQ = re.compile(r"[ \t]*([0-9]{1,10})[ \t]+([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*\Z")


class CSeq(NamedTuple):
    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


def parse_cseq(text: str) -> CSeq:
    m = _CSEQ.match(text)
    if m is None:
        raise BadRequest("Bad CSeq")
    seq = int(m.group(1))
    if seq >= CSEQ_LIMIT:
        raise BadRequest("CSeq number too large")
    return CSeq(seq, m.group(2))
