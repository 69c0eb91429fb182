"""The visitor's address: the socket's peer, or what a trusted proxy says it saw.

A header such as X-Forwarded-For is written by whoever sends the request, so it counts only
when the peer is one of our proxies. Each proxy appends the address it saw, so the entries
to the right are the ones our own proxies wrote; the right-most entry that is not itself one
of our proxies is the visitor. Anything left of it could be made up by the visitor.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from functools import lru_cache

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Peers seen by one process; a handful of proxies, or many visitors when none is in front.
PEER_CACHE_SIZE = 4096


def parse_networks(text: str) -> tuple[Network, ...]:
    """Comma-separated CIDRs (or single addresses); ValueError naming the first bad one."""
    networks = []
    for part in text.split(","):
        entry = part.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP network (CIDR) or address") from None
    return tuple(networks)


def parse_address(text: str) -> Address | None:
    """An address from a header entry or a peer, or None for anything else."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; they are the IPv4 address.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class ClientAddress:
    """Finds the visitor's address for a peer and the client IP header's values."""

    def __init__(self, trusted_proxies: str | Iterable[Network]) -> None:
        nets = (
            parse_networks(trusted_proxies)
            if isinstance(trusted_proxies, str)
            else tuple(trusted_proxies)
        )
        self.networks = nets
        # The IPv4 ones as (network, mask) integers: most visitors' addresses are IPv4 and
        # new to this process, and building an IPv4Address for each (and its text back) was
        # most of the cost of resolving them.
        self._v4 = tuple(
            (int(net.network_address), int(net.netmask)) for net in nets if net.version == 4
        )
        self.peer_trusted = lru_cache(maxsize=PEER_CACHE_SIZE)(self._peer_trusted)

    def _trusted(self, address: Address) -> bool:
        return any(address in net for net in self.networks)

    def _peer_trusted(self, peer: str) -> bool:
        address = parse_address(peer)
        return address is not None and self._trusted(address)

    def resolve(self, peer: str, forwarded: Iterable[str] = ()) -> str:
        """The visitor's address as text: from `forwarded` only when the peer is trusted."""
        if not self.networks or not self.peer_trusted(peer):
            return peer
        entries = [e for value in forwarded for e in value.split(",")]
        for entry in reversed(entries):
            text = entry.strip()
            try:
                # Takes only a dotted quad as ipaddress writes it (no leading zeros), so
                # the text is already the address's canonical form.
                number = int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
            except (OSError, ValueError):
                # IPv6, bracketed, IPv4-mapped, or not an address at all.
                address = parse_address(text)
                if address is not None and not self._trusted(address):
                    return str(address)
                continue
            if not any(number & mask == network for network, mask in self._v4):
                return text
        return peer
