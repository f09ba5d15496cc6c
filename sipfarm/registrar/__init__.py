"""The sans-IO registrar (RFC 3261 §10, RFC 3327 Path, RFC 5626 outbound basics).

:class:`Registrar` decides, :class:`Location` stores (:class:`MemoryLocation` in
memory), :class:`Binding` is what is stored.  No I/O, no clock: ``now`` is passed in.
"""

from .binding import Binding, contact_key
from .errors import IntervalTooBrief, OutOfOrder, TooManyContacts
from .location import Location, MemoryLocation, rank
from .registrar import Registrar, RegistrarConfig, aor_of, parse_delta, parse_qvalue
from .stored import StoredLocation

__all__ = [
    "Binding",
    "IntervalTooBrief",
    "Location",
    "MemoryLocation",
    "OutOfOrder",
    "Registrar",
    "RegistrarConfig",
    "StoredLocation",
    "TooManyContacts",
    "aor_of",
    "contact_key",
    "parse_delta",
    "parse_qvalue",
    "rank",
]
