"""Never inward: where a webhook or postback may be sent, checked at write and at delivery.

A target is resolved when it is checked, every address it resolves to must be public, and
the request then goes to the address that was checked (the URL's host replaced by it, the
Host header and TLS SNI kept), so that a name which resolves elsewhere a second time (DNS
rebinding) cannot lead the request inside.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

import httpx

ALLOWED_SCHEMES = frozenset({"http", "https"})
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# NAT64 (RFC 6052): the last 32 bits are an IPv4 address a translator would reach.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class TargetRefused(ValueError):
    """A URL the service will not send to; the message says why."""


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect, and the names the request keeps."""

    url: httpx.URL  # the original host replaced by the checked address
    host_header: str
    sni_hostname: str | None
    address: str


def allowed_port(port: int) -> bool:
    """80, 443 and the unprivileged ports: never another service's well-known port."""
    return port in (80, 443) or 1024 <= port <= 65535


def _embedded_v4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return None


def refusal(ip: IPAddress) -> str | None:
    """Why an address is not a public one, or None when it is."""
    inner = _embedded_v4(ip)
    if inner is not None:
        why = refusal(inner)
        return f"{why} (inside {ip})" if why else None
    for name, flag in (
        ("loopback", ip.is_loopback),
        ("unspecified", ip.is_unspecified),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    ):
        if flag:
            return f"{ip} is a {name} address"
    if not ip.is_global:
        return f"{ip} is not a public address"
    return None


def parse_target(url: str) -> httpx.URL:
    """The URL, if its scheme and port may be used at all (addresses aside)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise TargetRefused(f"not a URL: {exc}") from exc
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise TargetRefused("only http and https URLs")
    if not parsed.host:
        raise TargetRefused("the URL has no host")
    if parsed.userinfo:
        raise TargetRefused("credentials in the URL are not sent; leave them out")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if not allowed_port(port):
        raise TargetRefused(f"port {port} is not allowed (80, 443 or 1024-65535)")
    return parsed


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address a host name (or literal) stands for, now."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefused(f"{host} does not resolve") from exc
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in found:
            found.append(ip)
    if not found:
        raise TargetRefused(f"{host} does not resolve")
    return found


async def check(url: str, *, allow_private: bool) -> Target:
    """Resolve the URL's host and pick the address to connect to; TargetRefused if it may not
    be sent to (any of its addresses not public, unless allow_private)."""
    parsed = parse_target(url)
    host = parsed.host
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = await resolve(host, port)
    if not allow_private:
        for ip in addresses:
            why = refusal(ip)
            if why is not None:
                raise TargetRefused(f"{host} resolves to a non-public address: {why}")
    chosen = str(addresses[0])
    host_header = parsed.netloc.decode("ascii")
    is_literal = chosen == host.strip("[]")
    return Target(
        url=parsed.copy_with(host=chosen),
        host_header=host_header,
        sni_hostname=None if is_literal or parsed.scheme != "https" else host,
        address=chosen,
    )
