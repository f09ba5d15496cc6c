"""Peers exempt from digest authentication, by source address or prefix.

Built once from configuration (addresses and CIDR prefixes, IPv4 and IPv6), asked
once per request.  :mod:`ipaddress` costs microseconds per address, so answers are
kept in a bounded dict keyed by the host string as the transport gives it: a busy
trunk or gateway costs one dict lookup.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["CACHE_SIZE", "TrustedSources"]

#: Answers kept before the cache starts over.
CACHE_SIZE = 4096

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedSources:
    """``host in trusted``: is ``host`` (an IP address as text) inside a listed prefix.

    A bare address is a /32 (/128).  An IPv6 host may come in brackets, with a zone
    (``fe80::1%eth0``), or IPv4-mapped (``::ffff:192.0.2.1``, as a dual-stack socket
    reports an IPv4 peer); a host that is not an address is not trusted.
    """

    __slots__ = ("_cache", "_cache_size", "_v4", "_v6", "networks")

    def __init__(self, sources: Iterable[str], *, cache_size: int = CACHE_SIZE):
        if isinstance(sources, str):
            raise TypeError("sources is a list of addresses or prefixes, not one string")
        networks: list[_Network] = []
        for source in sources:
            text = source.strip()
            try:
                networks.append(ipaddress.ip_network(text))
            except ValueError as exc:
                raise ValueError(f"bad trusted source {source!r}: {exc}") from None
        self.networks: tuple[_Network, ...] = tuple(networks)
        # (network address, mask) as ints: a check is two int operations per prefix
        self._v4 = tuple(
            (int(n.network_address), int(n.netmask))
            for n in networks
            if isinstance(n, ipaddress.IPv4Network)
        )
        self._v6 = tuple(
            (int(n.network_address), int(n.netmask))
            for n in networks
            if isinstance(n, ipaddress.IPv6Network)
        )
        self._cache: dict[str, bool] = {}
        self._cache_size = cache_size

    def __len__(self) -> int:
        return len(self.networks)

    def __repr__(self) -> str:
        return f"TrustedSources({[str(n) for n in self.networks]!r})"

    def __contains__(self, host: str) -> bool:
        answer = self._cache.get(host)
        if answer is None:
            answer = self._lookup(host)
            if len(self._cache) >= self._cache_size:
                self._cache.clear()  # a flood of new hosts: start over, stay bounded
            self._cache[host] = answer
        return answer

    def _lookup(self, host: str) -> bool:
        if host[:1] == "[" and host[-1:] == "]":
            host = host[1:-1]
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address):
            mapped = address.ipv4_mapped
            if mapped is None:
                value = int(address)
                return any(value & mask == net for net, mask in self._v6)
            if any(int(address) & mask == net for net, mask in self._v6):
                return True
            address = mapped
        value = int(address)
        return any(value & mask == net for net, mask in self._v4)
