"""The registrar's decisions: RFC 3261 §10.3 steps 6 to 8, with Path (RFC 3327) and outbound
(RFC 5626 §6) basics.  Sans-IO: a parsed REGISTER, its resolved AOR, its flow and ``now`` in,
a :class:`~sipfarm.sip.Response` out.

The caller has done steps 1 to 5 (domain, Require, authentication, To -> AOR, 403/404);
this module owns the bindings.  Decisions, where the RFCs leave a choice:

- AOR (:func:`aor_of`): ``sip:user@host``; sips is the same AOR as sip (§10.2.1 lets a
  sips To register the same AOR); user case-sensitive with escapes decoded, host
  lower-case; port, parameters and headers dropped (an AOR names a user of a domain);
  tel: ``tel:number``.
- Expiry of a contact: its ``expires`` parameter, else the Expires header, else
  ``default_expires`` (§10.2.1.1); a malformed value counts as absent (§20.19: treat as
  the default); above ``max_expires`` it is cut to it; non-zero below ``min_expires``:
  423 with Min-Expires (§10.3 step 6); 0 removes the binding.
- ``Contact: *`` needs ``Expires: 0`` and no other contact, else 400 (§10.3 step 6).
- q: ``qvalue`` of §25.1 (0 to 1, three decimals at most), else 400.
- Call-ID/CSeq (§10.3 step 7): a REGISTER whose Call-ID and CSeq equal those stored
  in any binding of the AOR is a retransmission (REGISTER has no server transaction
  here): 200 with the current bindings, nothing changes.  Same Call-ID with a lower
  CSeq than the binding it touches: 500 "Out of Order" (see :class:`OutOfOrder`),
  nothing changes.  Another Call-ID replaces (or removes) the binding.
- Contacts are equal by :func:`~sipfarm.registrar.binding.contact_key` (§19.1.4,
  simplified); outbound contacts by ``(+sip.instance, reg-id)`` (RFC 5626 §6).
- Path (RFC 3327 §5.3): stored in every binding the request writes, whether or not
  the UA sent ``Supported: path`` (as Kamailio does: refusing with 420 breaks a UA
  behind an edge proxy for no gain); echoed in the 200 only when it did.
- Outbound: applies to a contact with ``+sip.instance`` and ``reg-id`` when the
  request has ``Supported: outbound``; then the 200 carries ``Require: outbound``.
  ``reg-id`` without ``+sip.instance`` or without that option tag is ignored; two
  contacts with reg-id in one REGISTER: 400.
- More than ``max_contacts`` bindings after the request (and more than before it):
  403 (see :class:`TooManyContacts`), nothing changes.
- The 200 lists every current binding, ``<uri>;expires=N[;q=..]`` (plus
  ``+sip.instance``/``reg-id`` of outbound bindings), with N the seconds left, and
  carries Date (RFC 1123, GMT) and ``Supported: path, outbound``.
- Every refusal is a response; nothing is stored unless the whole request is valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ..actions import Source
from ..sip import Request, Response, make_response
from ..sip.errors import BadRequest, SipError, UnsupportedUriScheme
from ..sip.grammar import split_comma
from ..sip.nameaddr import parse_nameaddr
from ..sip.uri import SipUri, TelUri, Uri, parse_uri
from .binding import Binding, ContactKey, contact_key
from .errors import IntervalTooBrief, OutOfOrder, TooManyContacts
from .location import Location

__all__ = ["Registrar", "RegistrarConfig", "aor_of"]

#: RFC 3261 §20.19 / §10.2.1.1: delta-seconds are at most 2**32 - 1.
MAX_DELTA = 2**32 - 1
#: RFC 5626 §4.2.1: reg-id is 1 to 2**31 - 1.
MAX_REG_ID = 2**31 - 1

_new = tuple.__new__  # NamedTuple instances without the Python-level __new__ (hot path)
_TEL_VISUAL = str.maketrans("", "", "-.()")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class RegistrarConfig:
    """Expiry bounds in seconds (RFC 3261 §10.3 step 6) and the per-AOR contact limit."""

    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    max_contacts: int = 10

    def __post_init__(self) -> None:
        if not 1 <= self.min_expires <= self.default_expires <= self.max_expires <= MAX_DELTA:
            raise ValueError("need 1 <= min_expires <= default_expires <= max_expires < 2**32")
        if self.max_contacts < 1:
            raise ValueError("max_contacts must be at least 1")


def aor_of(uri: Uri | str) -> str:
    """The canonical address-of-record of a To URI (see the module docstring)."""
    if isinstance(uri, str):
        uri = parse_uri(uri)
    if type(uri) is SipUri:
        host = uri.host.lower()
        return f"sip:{uri.user}@{host}" if uri.user is not None else f"sip:{host}"
    if type(uri) is TelUri:
        return "tel:" + uri.number.translate(_TEL_VISUAL)
    raise UnsupportedUriScheme()


def parse_delta(text: str | None) -> int | None:
    """delta-seconds (RFC 3261 §25.1), capped at 2**32 - 1; None when absent or malformed."""
    if text is None or not text.isdigit() or not text.isascii():
        return None
    if len(text) > 10:
        return MAX_DELTA
    return min(int(text), MAX_DELTA)


def parse_qvalue(text: str) -> float:
    """``qvalue = ("0" ["." 0*3DIGIT]) / ("1" ["." 0*3("0")])`` (RFC 3261 §25.1), else 400."""
    head, dot, frac = text.partition(".")
    ok = (
        (head == "0" or head == "1")
        and len(frac) <= 3
        and (not frac or (frac.isdigit() and frac.isascii()))
        and (head == "0" or not frac.strip("0"))
    )
    if not ok:
        raise BadRequest("Bad q value in Contact")
    return float(text) if dot or head == "1" else 0.0


def _reg_id(text: str) -> int:
    if not text.isdigit() or not text.isascii() or len(text) > 10:
        raise BadRequest("Bad reg-id in Contact")
    value = int(text)
    if not 1 <= value <= MAX_REG_ID:
        raise BadRequest("Bad reg-id in Contact")
    return value


def _rfc1123(second: int) -> str:
    """``Sat, 13 Nov 2010 23:29:00 GMT`` (RFC 3261 §20.17)."""
    d = datetime.fromtimestamp(second, UTC)
    return (
        f"{_DAYS[d.weekday()]}, {d.day:02d} {_MONTHS[d.month - 1]} {d.year:04d} "
        f"{d.hour:02d}:{d.minute:02d}:{d.second:02d} GMT"
    )


def _contact_value(b: Binding, now: float) -> str:
    left = b.expires_at - now  # > 0: only live bindings are listed
    out = f"<{b.contact}>;expires={int(left + 0.5) if left >= 1 else 1}"
    if b.q is not None:
        q = f"{b.q:.3f}".rstrip("0").rstrip(".")
        out += f";q={q}"
    if b.reg_id is not None:
        out += f";+sip.instance={b.instance};reg-id={b.reg_id}"
    return out


class Registrar:
    """RFC 3261 §10.3 over a :class:`~sipfarm.registrar.location.Location`.

    Holds no state of its own but the config and a one-entry cache of the Date value.
    """

    __slots__ = ("_date", "_date_second", "config", "location")

    def __init__(self, location: Location, config: RegistrarConfig):
        self.location = location
        self.config = config
        self._date_second = -1
        self._date = ""

    def register(
        self, request: Request, aor: str, source: Source, now: float, *, to_tag: str
    ) -> Response:
        """Answer a REGISTER for ``aor`` that passed §10.3 steps 1 to 5, updating the bindings."""
        try:
            headers = self._update(request, aor, source, now)
        except SipError as exc:
            return make_response(
                request, exc.status, exc.reason, headers=exc.headers, to_tag=to_tag
            )
        return make_response(request, 200, "OK", headers=headers, to_tag=to_tag)

    def date(self, now: float) -> str:
        """The Date header value of ``now`` (computed once per second)."""
        second = int(now)
        if second != self._date_second:
            self._date = _rfc1123(second)
            self._date_second = second
        return self._date

    # -- §10.3 steps 6 and 7; the 200 of step 8 --------------------------------------------

    def _update(
        self, request: Request, aor: str, source: Source, now: float
    ) -> tuple[tuple[str, str], ...]:
        cfg = self.config
        h = request.headers
        call_id = request.call_id
        cseq = request.cseq.seq
        current = [b for b in self.location.bindings(aor) if b.expires_at > now]
        supported_lines = h.get_all_key("supported")
        supported = (
            {t.strip().lower() for line in supported_lines for t in line.split(",")}
            if supported_lines
            else set()
        )
        path_lines = h.get_all_key("path")
        echo_path = path_lines if path_lines and "path" in supported else ()
        outbound = "outbound" in supported

        for b in current:
            if b.cseq == cseq and b.call_id == call_id:  # a retransmission: same answer
                return self._ok(current, now, echo_path, outbound and _asks_outbound(request))

        contact_lines = h.get_all_key("contact")
        if len(contact_lines) == 1 and contact_lines[0] == "*":  # request.contact_star
            if parse_delta(h.get_key("expires")) != 0:
                raise BadRequest("Contact '*' needs Expires: 0")
            for b in current:
                if b.call_id == call_id and b.cseq > cseq:
                    raise OutOfOrder()
            self.location.store(aor, ())
            return self._ok((), now, echo_path, False)

        if not contact_lines:  # a query (§10.3 step 6: no Contact)
            return self._ok(current, now, echo_path, False)

        header_expires = parse_delta(h.get_key("expires"))
        if header_expires is None:
            header_expires = cfg.default_expires
        path: tuple[str, ...] = ()
        if path_lines:
            path = tuple(v for line in path_lines for v in split_comma(line))
            for element in path:
                parse_nameaddr(element)  # a Path value we cannot route on later: 400 now

        new = current.copy()
        used_outbound = False
        for c in request.contact:
            expires_text: str | None = None
            q_text: str | None = None
            instance: str | None = None
            reg_text: str | None = None
            for k, v in c.params:  # one pass; the first of a repeated parameter counts
                lk = k.lower()
                if lk == "expires":
                    if expires_text is None:
                        expires_text = v or ""
                elif lk == "q":
                    if q_text is None:
                        q_text = v or ""
                elif lk == "+sip.instance":
                    if instance is None:
                        instance = v or ""
                elif lk == "reg-id" and reg_text is None:
                    reg_text = v or ""
            expires = parse_delta(expires_text) if expires_text is not None else None
            if expires is None:
                expires = header_expires
            if expires:
                if expires < cfg.min_expires:
                    raise IntervalTooBrief(cfg.min_expires)
                if expires > cfg.max_expires:
                    expires = cfg.max_expires
            q = parse_qvalue(q_text) if q_text is not None else None
            reg_id = None
            if outbound and instance and reg_text is not None:
                if used_outbound:
                    raise BadRequest("More than one Contact with reg-id")
                reg_id = _reg_id(reg_text)
                used_outbound = True

            uri = c.uri
            text = str(uri)
            i = _find(new, uri, text, instance, reg_id)
            old = new[i] if i >= 0 else None
            if old is not None and old.call_id == call_id and old.cseq > cseq:
                raise OutOfOrder()
            if not expires:
                if old is not None:
                    del new[i]
                continue
            if old is not None and old.path == path:
                path = old.path  # share the tuple: bindings behind one edge proxy repeat it
            b = _new(
                Binding,
                (text, q, now + expires, call_id, cseq, path, source, instance, reg_id, now),
            )
            if old is not None:
                new[i] = b
            else:
                new.append(b)

        if len(new) > cfg.max_contacts and len(new) > len(current):
            raise TooManyContacts()
        self.location.store(aor, new)
        return self._ok(new, now, echo_path, used_outbound)

    def _ok(
        self,
        bindings: list[Binding] | tuple[()],
        now: float,
        echo_path: list[str] | tuple[()],
        used_outbound: bool,
    ) -> tuple[tuple[str, str], ...]:
        out = [("Path", v) for v in echo_path]
        if used_outbound:
            out.append(("Require", "outbound"))
        for b in bindings:
            out.append(("Contact", _contact_value(b, now)))
        out.append(("Supported", "path, outbound"))
        out.append(("Date", self.date(now)))
        return tuple(out)


def _find(
    bindings: list[Binding], uri: Uri, text: str, instance: str | None, reg_id: int | None
) -> int:
    """Index of the binding the contact names, or -1 (RFC 3261 §10.3 step 7, RFC 5626 §6)."""
    if reg_id is not None:
        for i, b in enumerate(bindings):
            if b.reg_id == reg_id and b.instance == instance:
                return i
        return -1
    for i, b in enumerate(bindings):
        if b.contact == text:
            return i
    key: ContactKey | None = None
    for i, b in enumerate(bindings):
        if key is None:
            key = contact_key(uri)
        if contact_key(parse_uri(b.contact)) == key:
            return i
    return -1


def _asks_outbound(request: Request) -> bool:
    """Does a contact carry ``+sip.instance`` and ``reg-id`` (RFC 5626 §6)?"""
    return any(
        c.params.get("+sip.instance") is not None and c.params.get("reg-id") is not None
        for c in request.contact
    )
