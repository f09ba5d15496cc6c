"""Kernel steering of responses in the one-host farm (SO_REUSEPORT + eBPF).

The members of ``sipfarm up`` share one UDP socket address with SO_REUSEPORT,
and the kernel picks the member of each datagram by a hash of its addresses.
A response belongs to the member whose token is in its top Via branch
(``z9hG4bK.<token>.``, :mod:`sipfarm.ownership`); the member the hash picks
relays it there over the cluster link (DESIGN.md "Routing"), which costs both
members a wakeup.  A SIP UAS answers every request of a call from one flow,
so with two members half the responses of the calls took that detour.

This module puts the choice in the kernel, as QUIC servers steer datagrams by
their connection ID: a ``BPF_PROG_TYPE_SK_REUSEPORT`` program, attached to the
members' socket group, reads a datagram that starts ``SIP/2.0 `` up to its
first ``z9hG4bK.<token>.``, looks the token up in a hash map (token -> slot)
and selects the slot's socket in a ``REUSEPORT_SOCKARRAY``.  Everything else
(requests, a token of no slot, a slot whose member is gone, a Via the scan
does not reach) falls back to the kernel's hash, and the member it lands on
routes it as before: steering only spares relays, it decides nothing.

Who does what:

- the supervisor (:mod:`sipfarm.up`) makes the maps and the program once
  (:meth:`Steering.create`), gives each member slot its token
  (:meth:`Steering.assign`) and passes the three descriptors to the members;
- a member (:class:`Enlisted`) attaches the program to its socket, puts its
  socket in its slot when it starts and again on each view that shows it live
  (it may have been taken out meanwhile), and takes a dead member's socket
  out of its slot (a frozen process still holds its socket: until it is back,
  its responses go by hash to a member that serves them or relays them).
  A member that exits closes its socket, and the kernel empties its slot.

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
from collections.abc import Iterator
from dataclasses import dataclass

from ..ownership import TOKEN_MAX

__all__ = ["SCAN", "Enlisted", "Steering", "SteeringError", "program"]


class SteeringError(OSError):
    """The kernel refused a part of the steering (no bpf(), no privilege, the verifier)."""


#: How far into a response the program looks for the top Via's branch (bytes).
SCAN = 512

#: Member slots a farm can steer to.
SLOTS = 256

# -- bpf(2): the few commands used, and their attribute layouts (linux/bpf.h) -------------

_NR_BPF = {"x86_64": 321, "aarch64": 280}
_MAP_CREATE, _MAP_LOOKUP_ELEM, _MAP_UPDATE_ELEM, _MAP_DELETE_ELEM, _PROG_LOAD = 0, 1, 2, 3, 5
_MAP_TYPE_HASH, _MAP_TYPE_REUSEPORT_SOCKARRAY = 1, 20
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
_LDXB, _LDXW, _LDXDW, _STXB, _STXW, _STDW = 0x71, 0x61, 0x79, 0x73, 0x63, 0x7A
_MOV, _MOV_REG, _ADD, _ADD_REG, _LDDW = 0xB7, 0xBF, 0x07, 0x0F, 0x18
_JEQ, _JNE, _JGT, _JNE_REG, _JGT_REG, _CALL, _EXIT = 0x15, 0x55, 0x25, 0x5D, 0x2D, 0x85, 0x95
_PSEUDO_MAP_FD = 1
_FN_MAP_LOOKUP_ELEM, _FN_SK_SELECT_REUSEPORT = 1, 82
_SK_PASS = 1
_IPPROTO_UDP = 17
_MD_DATA, _MD_DATA_END, _MD_IP_PROTOCOL = 0, 8, 24  # struct sk_reuseport_md
_UDP_HEADER = 8
_STATUS = int.from_bytes(b"SIP/2.0 ", "little")
_BRANCH = int.from_bytes(b"z9hG4bK.", "little")


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


def program(tokens_fd: int, sockets_fd: int) -> bytes:
    """The steering program (module docstring), for its two maps."""
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
        _Insn(_JNE_REG, 3, 4, "pass"),  # not a response
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

    @classmethod
    def create(cls) -> Steering:
        """Make the maps and load the program; SteeringError when the kernel will not."""
        tokens = _map_create(_MAP_TYPE_HASH, TOKEN_MAX, 4, SLOTS, b"sipfarm_tokens")
        try:
            sockets = _map_create(_MAP_TYPE_REUSEPORT_SOCKARRAY, 4, 8, SLOTS, b"sipfarm_socks")
        except BaseException:
            os.close(tokens)
            raise
        try:
            prog = _load(program(tokens, sockets))
        except BaseException:
            os.close(tokens)
            os.close(sockets)
            raise
        return cls(prog, sockets, tokens)

    @classmethod
    def parse(cls, text: str) -> Steering:
        """The ``PROGRAM,SOCKETS,TOKENS`` descriptors of ``sipfarm member --steering``."""
        try:
            program_fd, sockets_fd, tokens_fd = (int(part) for part in text.split(","))
        except ValueError:
            raise ValueError(f"--steering wants three descriptors A,B,C, not {text!r}") from None
        return cls(program_fd, sockets_fd, tokens_fd)

    def __str__(self) -> str:
        return f"{self.program_fd},{self.sockets_fd},{self.tokens_fd}"

    def fds(self) -> Iterator[int]:
        yield from (self.program_fd, self.sockets_fd, self.tokens_fd)

    def assign(self, token: str, slot: int) -> None:
        """Responses with ``token`` in their branch go to the socket in ``slot``."""
        if not 0 <= slot < SLOTS:
            raise ValueError(f"slot {slot} is not in 0..{SLOTS - 1}")
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
