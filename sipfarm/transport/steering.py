"""Kernel steering of datagrams in the one-host farm (SO_REUSEPORT + eBPF).

The members of ``sipfarm up`` share one UDP socket address with SO_REUSEPORT,
and the kernel picks the member of each datagram by a hash of its addresses.
A response belongs to the member whose token is in its top Via branch
(``z9hG4bK.<token>.``, :mod:`sipfarm.ownership`), a new request to the owner of
its Call-ID on the ring, an in-dialog one to the member in its Route, which made
the dialog as the owner of its Call-ID; the member the hash picks relays each
there over the cluster link (DESIGN.md "Routing"), which costs both members a
wakeup.  A SIP UAS answers every request of a call from one flow, and a caller
sends a call's requests from one flow, so with two members about one packet in
eight took that detour (a relay per call).

This module puts the choice in the kernel, as QUIC servers steer datagrams by
their connection ID: a ``BPF_PROG_TYPE_SK_REUSEPORT`` program, attached to the
members' socket group, reads a datagram

- that starts ``SIP/2.0 `` up to its first ``z9hG4bK.<token>.``, looks the
  token up in a hash map (token -> slot) and selects the slot's socket in a
  ``REUSEPORT_SOCKARRAY``;
- that is a request up to its ``Call-ID`` (or ``i``) header, takes the CRC-32
  of its value (:func:`cluster.ring.bucket`, the same function) and selects the
  socket of that bucket's owner, from an array map that holds the owner's slot
  of each of the ring's buckets, which the members write on every view change
  (:meth:`Enlisted.publish`).

Everything else (a token of no slot, a slot whose member is gone, a header the
scan does not reach, no ring yet) falls back to the kernel's hash, and the
member it lands on routes it as before: steering only spares relays, it
decides nothing.  A view change can leave the kernel a step behind the router
for a moment; that costs relays, not packets.

Who does what:

- the supervisor (:mod:`sipfarm.up`) makes the maps and the program once
  (:meth:`Steering.create`), gives each member slot its token
  (:meth:`Steering.assign`) and passes the descriptors to the members;
- a member (:class:`Enlisted`) attaches the program to its socket, puts its
  socket in its slot when it starts and again on each view that shows it live
  (it may have been taken out meanwhile), takes a dead member's socket out of
  its slot (a frozen process still holds its socket: until it is back, what
  was steered to it goes by hash to a member that serves it or relays it), and
  publishes the owners of the buckets of each new ring.  A member that exits
  closes its socket, and the kernel empties its slot.

The program is written here in eBPF machine code (no compiler at run time:
:func:`program`); it needs root (CAP_BPF and CAP_NET_ADMIN) and Linux >= 5.3
(bounded loops).  Where any of it fails the farm runs without steering.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import socket
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from cluster.ring import BUCKETS

from ..ownership import TOKEN_MAX

__all__ = ["SCAN", "Enlisted", "Steering", "SteeringError", "program"]


class SteeringError(OSError):
    """The kernel refused a part of the steering (no bpf(), no privilege, the verifier)."""


#: How far into a response the program looks for the top Via's branch (bytes).
SCAN = 512
#: How far into a request it looks for its Call-ID header (bytes), and how long a
#: Call-ID it hashes (after at most 7 blanks; longer ones are placed by the
#: kernel's hash, then relayed).
SCAN_REQUEST = 1024
CALL_ID_MAX = 160

#: Member slots a farm can steer to.
SLOTS = 256

# -- bpf(2): the few commands used, and their attribute layouts (linux/bpf.h) -------------

_NR_BPF = {"x86_64": 321, "aarch64": 280}
_MAP_CREATE, _MAP_LOOKUP_ELEM, _MAP_UPDATE_ELEM, _MAP_DELETE_ELEM, _PROG_LOAD = 0, 1, 2, 3, 5
_MAP_TYPE_HASH, _MAP_TYPE_ARRAY, _MAP_TYPE_PERCPU_ARRAY, _MAP_TYPE_REUSEPORT_SOCKARRAY = 1, 2, 6, 20
_PROG_TYPE_SK_REUSEPORT, _SK_REUSEPORT_SELECT = 21, 39
_ATTR_SIZE = 144
SO_ATTACH_REUSEPORT_EBPF = 52

_libc = ctypes.CDLL(None, use_errno=True)


def _bpf(command: int, attr: bytes) -> int:
    number = _NR_BPF.get(platform.machine())
    if number is None:
        raise SteeringError(errno.ENOSYS, f"bpf() is not known on {platform.machine()}")
    buf = ctypes.create_string_buffer(attr.ljust(_ATTR_SIZE, b"\0"), _ATTR_SIZE)
    result = _libc.syscall(ctypes.c_long(number), ctypes.c_int(command), buf, _ATTR_SIZE)
    if result < 0:
        code = ctypes.get_errno()
        raise SteeringError(code, f"bpf({command}): {os.strerror(code)}")
    return int(result)


def _map_create(kind: int, key_size: int, value_size: int, entries: int, name: bytes) -> int:
    attr = struct.pack("<IIIII8x16s", kind, key_size, value_size, entries, 0, name)
    return _bpf(_MAP_CREATE, attr)


def _elem(command: int, fd: int, key: bytes, value: bytes | None = None) -> bytes | None:
    """Look up, update or delete one element; what the lookup read (None for a delete,
    whose attributes end at the key: the kernel refuses anything after it)."""
    k = ctypes.create_string_buffer(key, len(key))
    if value is None:
        _bpf(command, struct.pack("<I4xQ", fd, ctypes.addressof(k)))
        return None
    v = ctypes.create_string_buffer(value, max(len(value), 8))
    _bpf(command, struct.pack("<I4xQQQ", fd, ctypes.addressof(k), ctypes.addressof(v), 0))
    return v.raw


# -- the program ----------------------------------------------------------------------------

# Registers: r1-r5 arguments (clobbered by calls), r6-r9 kept, r10 the frame pointer.
_LDXB, _LDXH, _LDXW, _LDXDW = 0x71, 0x69, 0x61, 0x79
_STXB, _STXW, _STXDW, _STW, _STDW = 0x73, 0x63, 0x7B, 0x62, 0x7A
_MOV, _MOV_REG, _ADD, _ADD_REG, _OR, _OR_REG, _LDDW = 0xB7, 0xBF, 0x07, 0x0F, 0x47, 0x4F, 0x18
# 32-bit arithmetic (the upper half of the register cleared): the CRC-32 of the Call-ID
# (no BPF_NEG: this kernel's verifier dereferences NULL on it, 6.18.44; a multiply does)
_MOV32, _AND32, _MUL32, _RSH32, _XOR32, _XOR32_REG = 0xB4, 0x54, 0x24, 0x74, 0xA4, 0xAC
_JA, _JEQ, _JNE, _JGT, _JNE_REG, _JEQ_REG, _JGT_REG = 0x05, 0x15, 0x55, 0x25, 0x5D, 0x1D, 0x2D
_CALL, _EXIT = 0x85, 0x95
_PSEUDO_MAP_FD = 1
_FN_MAP_LOOKUP_ELEM, _FN_SK_SELECT_REUSEPORT = 1, 82
_SK_PASS = 1
_IPPROTO_UDP = 17
_MD_DATA, _MD_DATA_END, _MD_IP_PROTOCOL = 0, 8, 24  # struct sk_reuseport_md
_UDP_HEADER = 8
_STATUS = int.from_bytes(b"SIP/2.0 ", "little")
_BRANCH = int.from_bytes(b"z9hG4bK.", "little")
_CALL_ID = int.from_bytes(b"call-id:", "little")  # a header name, any case (| 0x20 each)
_COMPACT = int.from_bytes(b"i:", "little")
_LOWER = int.from_bytes(b"\x20" * 8, "little")
_CRC32 = 0xEDB88320 - (1 << 32)  # the reflected IEEE polynomial, as a signed immediate
_NO_SLOT = 0xFF  # a bucket whose owner has no socket in the group: the hash decides


@dataclass(frozen=True, slots=True)
class _Insn:
    code: int
    dst: int = 0
    src: int = 0
    off: int | str = 0  # a label for jumps, resolved by _assemble
    imm: int = 0


def _assemble(items: list[_Insn | str]) -> bytes:
    """Labels (strings) and instructions; ``_LDDW`` takes two slots."""
    where: dict[str, int] = {}
    pc = 0
    for item in items:
        if isinstance(item, str):
            where[item] = pc
        else:
            pc += 2 if item.code == _LDDW else 1
    out = bytearray()
    pc = 0
    for item in items:
        if isinstance(item, str):
            continue
        size = 2 if item.code == _LDDW else 1
        off = where[item.off] - (pc + 1) if isinstance(item.off, str) else item.off
        regs = (item.src << 4) | item.dst
        if item.code == _LDDW:
            imm = item.imm & 0xFFFF_FFFF_FFFF_FFFF
            out += struct.pack("<BBhI", _LDDW, regs, 0, imm & 0xFFFF_FFFF)
            out += struct.pack("<BBhI", 0, 0, 0, imm >> 32)
        else:
            out += struct.pack("<BBhi", item.code, regs, off, item.imm)
        pc += size
    return bytes(out)


def _first_value(map_fd: int, key_at: int) -> list[_Insn | str]:
    """r0 = the value of key 0 of an array map (the key written at ``key_at`` on the
    stack), or off to "pass"."""
    return [
        _Insn(_STW, 10, 0, key_at, 0),
        _Insn(_LDDW, 1, _PSEUDO_MAP_FD, 0, map_fd),
        _Insn(_MOV_REG, 2, 10),
        _Insn(_ADD, 2, 0, 0, key_at),
        _Insn(_CALL, 0, 0, 0, _FN_MAP_LOOKUP_ELEM),
        _Insn(_JEQ, 0, 0, "pass", 0),
    ]


def _call_id_bucket(scratch_fd: int) -> list[_Insn | str]:
    """A request: r0 = its Call-ID's bucket (:func:`cluster.ring.bucket`), or off to "pass".

    Two loops.  The first looks through the first ``SCAN_REQUEST`` bytes for a line
    that starts ``Call-ID:`` or ``i:`` (any case).  The second skips the blanks
    after the colon and runs the value's bytes, up to the end of its line, through
    a CRC-32 in r0 (bit by bit: no table), at most ``CALL_ID_MAX`` of them.

    Between the two, the value's offset goes through a per-CPU scratch word and
    comes back as a number the verifier knows only by its bounds.  Without that,
    it would check the second loop once for every place the first one can stop
    (a million instructions and more); with it, once.
    """
    code: list[_Insn | str] = [
        _Insn(_MOV, 9, 0, 0, 0),  # r9 = the next byte's offset in the payload
        "request",
        _Insn(_JGT, 9, 0, "pass", SCAN_REQUEST),
        _Insn(_MOV_REG, 2, 7),
        _Insn(_ADD_REG, 2, 9),  # r2 = the byte
        _Insn(_MOV_REG, 3, 2),
        _Insn(_ADD, 3, 0, 0, 9),
        _Insn(_JGT_REG, 3, 8, "pass"),  # fewer than 9 bytes left: no Call-ID after
        _Insn(_LDXB, 3, 2, 0),
        _Insn(_ADD, 9, 0, 0, 1),
        _Insn(_JNE, 3, 0, "request", ord("\n")),  # a line starts after this
        _Insn(_LDXDW, 4, 2, 1),
        _Insn(_LDDW, 5, 0, 0, _LOWER),
        _Insn(_OR_REG, 4, 5),
        _Insn(_LDDW, 5, 0, 0, _CALL_ID),
        _Insn(_JEQ_REG, 4, 5, "long"),
        _Insn(_LDXH, 4, 2, 1),
        _Insn(_OR, 4, 0, 0, 0x2020),
        _Insn(_JNE, 4, 0, "request", _COMPACT),
        _Insn(_ADD, 9, 0, 0, 2),  # past "i:"
        _Insn(_JA, 0, 0, "found"),
        "long",
        _Insn(_ADD, 9, 0, 0, 8),  # past "Call-ID:"
        "found",
        *_first_value(scratch_fd, -28),
        _Insn(_STXDW, 0, 9, 0),
        _Insn(_LDXDW, 9, 0, 0),
        _Insn(_JGT, 9, 0, "pass", SCAN_REQUEST + 10),
        _Insn(_MOV_REG, 2, 7),
        _Insn(_ADD_REG, 2, 9),  # r2 = the first byte after the colon
        _Insn(_MOV32, 0, 0, 0, -1),  # r0 = the CRC, inverted at the start
        _Insn(_MOV, 1, 0, 0, 0),  # r1 = the bytes read
        _Insn(_MOV, 5, 0, 0, 0),  # r5 = 0 in the blanks, 1 in the value
        "value",
        _Insn(_JGT, 1, 0, "pass", CALL_ID_MAX + 7),  # its blanks, value and CR
        _Insn(_MOV_REG, 3, 2),
        _Insn(_ADD, 3, 0, 0, 1),
        _Insn(_JGT_REG, 3, 8, "pass"),
        _Insn(_LDXB, 3, 2, 0),
        _Insn(_ADD, 2, 0, 0, 1),
        _Insn(_ADD, 1, 0, 0, 1),
        _Insn(_JEQ, 3, 0, "hashed", ord("\r")),
        _Insn(_JEQ, 3, 0, "hashed", ord("\n")),
        _Insn(_JNE, 5, 0, "byte", 0),
        _Insn(_JEQ, 3, 0, "value", ord(" ")),
        _Insn(_JEQ, 3, 0, "value", ord("\t")),
        _Insn(_MOV, 5, 0, 0, 1),
        "byte",
        _Insn(_XOR32_REG, 0, 3),
    ]
    for _ in range(8):  # crc = (crc >> 1) ^ ((crc & 1) * POLY)
        code += [
            _Insn(_MOV_REG, 4, 0),
            _Insn(_AND32, 4, 0, 0, 1),
            _Insn(_MUL32, 4, 0, 0, _CRC32),
            _Insn(_RSH32, 0, 0, 0, 1),
            _Insn(_XOR32_REG, 0, 4),
        ]
    code += [
        _Insn(_JA, 0, 0, "value"),
        "hashed",
        _Insn(_XOR32, 0, 0, 0, -1),
        _Insn(_AND32, 0, 0, 0, BUCKETS - 1),
    ]
    return code


def program(tokens_fd: int, sockets_fd: int, owners_fd: int, scratch_fd: int) -> bytes:
    """The steering program (module docstring), for its four maps."""
    code: list[_Insn | str] = [
        _Insn(_MOV_REG, 6, 1),  # r6 = the context
        _Insn(_LDXW, 2, 6, _MD_IP_PROTOCOL),
        _Insn(_JNE, 2, 0, "pass", _IPPROTO_UDP),
        _Insn(_LDXDW, 7, 6, _MD_DATA),  # r7 = the UDP header, then the payload
        _Insn(_LDXDW, 8, 6, _MD_DATA_END),  # r8 = the end of the linear data
        _Insn(_ADD, 7, 0, 0, _UDP_HEADER),
        _Insn(_MOV_REG, 2, 7),
        _Insn(_ADD, 2, 0, 0, 8),
        _Insn(_JGT_REG, 2, 8, "pass"),
        _Insn(_LDXDW, 3, 7, 0),
        _Insn(_LDDW, 4, 0, 0, _STATUS),
        _Insn(_JEQ_REG, 3, 4, "response"),
        *_call_id_bucket(scratch_fd),
        # r0 = the bucket: its owner's slot is byte r0 of the owners map's one value
        _Insn(_MOV_REG, 9, 0),
        *_first_value(owners_fd, -24),
        _Insn(_ADD_REG, 0, 9),
        _Insn(_LDXB, 3, 0, 0),
        _Insn(_JEQ, 3, 0, "pass", _NO_SLOT),
        _Insn(_JA, 0, 0, "select"),
        "response",
        _Insn(_LDDW, 5, 0, 0, _BRANCH),
        _Insn(_MOV, 9, 0, 0, 8),  # r9 = where to look next
        "scan",
        _Insn(_JGT, 9, 0, "pass", SCAN),
        _Insn(_MOV_REG, 2, 7),
        _Insn(_ADD_REG, 2, 9),  # r2 = payload + r9
        _Insn(_MOV_REG, 3, 2),
        _Insn(_ADD, 3, 0, 0, 8),
        _Insn(_JGT_REG, 3, 8, "pass"),
        _Insn(_LDXDW, 4, 2, 0),
        _Insn(_ADD, 9, 0, 0, 1),
        _Insn(_JNE_REG, 4, 5, "scan"),
        # The token: up to TOKEN_MAX bytes before a '.', into a zeroed 16-byte key.
        _Insn(_STDW, 10, 0, -16, 0),
        _Insn(_STDW, 10, 0, -8, 0),
    ]
    for i in range(TOKEN_MAX):
        code += [
            _Insn(_MOV_REG, 3, 2),
            _Insn(_ADD, 3, 0, 0, 8 + i + 1),
            _Insn(_JGT_REG, 3, 8, "pass"),
            _Insn(_LDXB, 4, 2, 8 + i),
            _Insn(_JEQ, 4, 0, "lookup", ord(".")),
            _Insn(_STXB, 10, 4, -16 + i),
        ]
    code += [
        "lookup",
        _Insn(_LDDW, 1, _PSEUDO_MAP_FD, 0, tokens_fd),
        _Insn(_MOV_REG, 2, 10),
        _Insn(_ADD, 2, 0, 0, -16),
        _Insn(_CALL, 0, 0, 0, _FN_MAP_LOOKUP_ELEM),
        _Insn(_JEQ, 0, 0, "pass", 0),
        _Insn(_LDXW, 3, 0, 0),
        "select",  # r3 = the slot
        _Insn(_STXW, 10, 3, -20),
        _Insn(_MOV_REG, 1, 6),
        _Insn(_LDDW, 2, _PSEUDO_MAP_FD, 0, sockets_fd),
        _Insn(_MOV_REG, 3, 10),
        _Insn(_ADD, 3, 0, 0, -20),
        _Insn(_MOV, 4, 0, 0, 0),
        _Insn(_CALL, 0, 0, 0, _FN_SK_SELECT_REUSEPORT),  # failing: the hash decides
        "pass",
        _Insn(_MOV, 0, 0, 0, _SK_PASS),
        _Insn(_EXIT),
    ]
    return _assemble(code)


def _load(insns: bytes, log_size: int = 0) -> int:
    """Load the program; when the kernel refuses, load it again with the verifier's log
    (a log that overflows its buffer fails the load with ENOSPC: none on the first try)."""
    text = ctypes.create_string_buffer(insns, len(insns))
    license = ctypes.create_string_buffer(b"Apache-2.0")
    log = ctypes.create_string_buffer(max(log_size, 1))
    attr = struct.pack(
        "<IIQQIIQII16sII",
        _PROG_TYPE_SK_REUSEPORT,
        len(insns) // 8,
        ctypes.addressof(text),
        ctypes.addressof(license),
        1 if log_size else 0,  # log_level
        log_size,
        ctypes.addressof(log) if log_size else 0,
        0,  # kern_version
        0,  # prog_flags
        b"sipfarm_steer",
        0,  # prog_ifindex
        _SK_REUSEPORT_SELECT,
    )
    try:
        return _bpf(_PROG_LOAD, attr)
    except SteeringError as exc:
        if not log_size and exc.errno not in (errno.EPERM, errno.ENOSYS):
            return _load(insns, 1 << 22)
        said = log.value.decode(errors="replace").strip().splitlines()[-3:]
        raise SteeringError(exc.errno, " | ".join([exc.strerror or "", *said])) from None


def _key(token: str) -> bytes:
    raw = token.encode()
    if not 0 < len(raw) <= TOKEN_MAX:
        raise ValueError(f"not a member token: {token!r}")
    return raw.ljust(TOKEN_MAX, b"\0")


# -- the two sides ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Steering:
    """The program and its maps: made by the supervisor, inherited by the members."""

    program_fd: int
    sockets_fd: int
    tokens_fd: int
    owners_fd: int
    scratch_fd: int

    @classmethod
    def create(cls) -> Steering:
        """Make the maps and load the program; SteeringError when the kernel will not."""
        made: list[int] = []
        try:
            made.append(_map_create(_MAP_TYPE_HASH, TOKEN_MAX, 4, SLOTS, b"sipfarm_tokens"))
            made.append(_map_create(_MAP_TYPE_REUSEPORT_SOCKARRAY, 4, 8, SLOTS, b"sipfarm_socks"))
            made.append(_map_create(_MAP_TYPE_ARRAY, 4, BUCKETS, 1, b"sipfarm_owners"))
            made.append(_map_create(_MAP_TYPE_PERCPU_ARRAY, 4, 8, 1, b"sipfarm_scratch"))
            tokens, sockets, owners, scratch = made
            prog = _load(program(tokens, sockets, owners, scratch))
        except BaseException:
            for fd in made:
                os.close(fd)
            raise
        steering = cls(prog, sockets, tokens, owners, scratch)
        steering.publish(bytes([_NO_SLOT]) * BUCKETS)  # no owners yet: by hash
        return steering

    @classmethod
    def parse(cls, text: str) -> Steering:
        """The ``PROGRAM,SOCKETS,TOKENS,OWNERS,SCRATCH`` descriptors of ``sipfarm member
        --steering``."""
        try:
            fds = [int(part) for part in text.split(",")]
        except ValueError:
            fds = []
        if len(fds) != 5:
            raise ValueError(f"--steering wants five descriptors A,B,C,D,E, not {text!r}")
        return cls(*fds)

    def __str__(self) -> str:
        return ",".join(map(str, self.fds()))

    def fds(self) -> Iterator[int]:
        yield from (
            self.program_fd,
            self.sockets_fd,
            self.tokens_fd,
            self.owners_fd,
            self.scratch_fd,
        )

    def assign(self, token: str, slot: int) -> None:
        """Responses with ``token`` in their branch go to the socket in ``slot``."""
        if not 0 <= slot < SLOTS or slot == _NO_SLOT:
            raise ValueError(f"slot {slot} is not in 0..{SLOTS - 2}")
        _elem(_MAP_UPDATE_ELEM, self.tokens_fd, _key(token), struct.pack("<I", slot))

    def slot(self, token: str) -> int | None:
        try:
            value = _elem(_MAP_LOOKUP_ELEM, self.tokens_fd, _key(token), bytes(4))
        except SteeringError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise
        assert value is not None
        return int(struct.unpack_from("<I", value)[0])

    def owners(self, table: Sequence[str | None]) -> bytes:
        """The owners map's value for a ring's :meth:`~cluster.ring.Ring.table`: each
        bucket's owner's slot (a member without one, or none: the hash decides)."""
        slots: dict[str | None, int] = {None: _NO_SLOT}
        for token in set(table):
            if token is not None:
                slot = self.slot(token)
                slots[token] = _NO_SLOT if slot is None else slot
        return bytes(slots[token] for token in table)

    def publish(self, owners: bytes) -> None:
        """Requests go to the slot of their Call-ID's bucket in ``owners`` (one byte each)."""
        if len(owners) != BUCKETS:
            raise ValueError(f"the owners of {BUCKETS} buckets, not {len(owners)}")
        _elem(_MAP_UPDATE_ELEM, self.owners_fd, bytes(4), owners)

    def close(self) -> None:
        for fd in self.fds():
            os.close(fd)


class Enlisted:
    """A member's side: its socket attached to the program and put in its slot."""

    def __init__(self, steering: Steering, token: str, sock: socket.socket) -> None:
        self.steering = steering
        self.token = token
        self.sock = sock
        slot = steering.slot(token)
        if slot is None:
            raise SteeringError(errno.ENOENT, f"no steering slot for member {token}")
        self.slot = slot
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, steering.program_fd)
        self.enlist()

    def enlist(self) -> None:
        """Put this member's socket in its slot (again: a frozen member that is back)."""
        value = struct.pack("<Q", self.sock.fileno())
        try:
            _elem(_MAP_UPDATE_ELEM, self.steering.sockets_fd, struct.pack("<I", self.slot), value)
        except SteeringError as exc:
            if exc.errno != errno.EBUSY:  # EBUSY: it is in its slot already
                raise

    def publish(self, table: Sequence[str | None]) -> None:
        """Requests go to the owner of their Call-ID's bucket in ``table`` (a ring's)."""
        self.steering.publish(self.steering.owners(table))

    def withdraw(self, token: str) -> bool:
        """Empty ``token``'s slot (a dead member); whether there was a socket in it."""
        slot = self.steering.slot(token)
        if slot is None or slot == self.slot:
            return False
        try:
            _elem(_MAP_DELETE_ELEM, self.steering.sockets_fd, struct.pack("<I", slot))
        except SteeringError as exc:
            if exc.errno == errno.ENOENT:
                return False
            raise
        return True
