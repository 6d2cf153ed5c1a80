"""Which addresses webhook deliveries may reach (SSRF protection).

A webhook URL is chosen by an integrator, so without a policy the platform could be made
to call its own loopback services, the private network it runs in, or the cloud
metadata endpoint that hands out credentials. Two checks apply the same `AddressPolicy`:

- `check_url` when a webhook is created or changed: a quick, DNS-free answer for the
  integrator (IP literals in every notation a resolver accepts, and `localhost`);
- `GuardedResolver` at send time, the authoritative check: every address a name
  resolves to is vetted, and the connection is made to exactly those addresses, so a
  name that resolves differently later (DNS rebinding) cannot slip through.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from vsense.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048

# Cloud metadata endpoints hand out instance credentials: refused even when private
# addresses are allowed. AWS/GCP/Azure/OpenStack (IPv4 and AWS's IPv6), the AWS ECS
# task credentials endpoint, and Alibaba Cloud's metadata service.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200")
)

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network
# (network, reason, lifted by allow_private). Checked in order after the metadata
# addresses; `ipaddress` flags catch the remaining special-purpose ranges. Ranges that
# are never a legitimate unicast destination (multicast, broadcast, class E...) stay
# refused with allow_private: only an explicit allow-list opens them.
_V4_RANGES: tuple[tuple[ipaddress.IPv4Network, str, bool], ...] = (
    (_V4("0.0.0.0/8"), "an unspecified ('this network') address", False),
    (_V4("127.0.0.0/8"), "a loopback address", True),
    (_V4("10.0.0.0/8"), "a private address", True),
    (_V4("172.16.0.0/12"), "a private address", True),
    (_V4("192.168.0.0/16"), "a private address", True),
    (_V4("169.254.0.0/16"), "a link-local address", True),
    (_V4("100.64.0.0/10"), "a shared (carrier-grade NAT) address", True),
    (_V4("198.18.0.0/15"), "a benchmarking address", False),
    (_V4("224.0.0.0/4"), "a multicast address", False),
    (_V4("255.255.255.255/32"), "the broadcast address", False),
    (_V4("240.0.0.0/4"), "a reserved (class E) address", False),
)
_V6_RANGES: tuple[tuple[ipaddress.IPv6Network, str, bool], ...] = (
    (_V6("::/128"), "the unspecified address", False),
    (_V6("::1/128"), "a loopback address", True),
    (_V6("fe80::/10"), "a link-local address", True),
    (_V6("fec0::/10"), "a site-local address", True),
    (_V6("fc00::/7"), "a unique local address", True),
    (_V6("ff00::/8"), "a multicast address", False),
    # Local-use NAT64 (RFC 8215): translated by the operator's own gateway.
    (_V6("64:ff9b:1::/48"), "a local-use NAT64 address", False),
)
_NAT64 = _V6("64:ff9b::/96")
_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$")


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses deliveries may contact.

    By default only globally routable addresses. `allow_private` lifts the refusal of
    addresses that can belong to the deployment's own networks (RFC 1918, loopback,
    link-local, CGNAT, IPv6 unique/site-local); metadata endpoints and ranges that are
    never unicast destinations stay refused. `allow_networks` allows exactly the
    networks listed, whatever they contain (including a metadata address).
    """

    allow_private: bool = False
    allow_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(cls, settings: Settings) -> AddressPolicy:
        """The policy the settings ask for (`webhook_allow_private`, `_allow_networks`)."""
        return cls(
            allow_private=settings.webhook_allow_private,
            allow_networks=tuple(settings.webhook_allow_networks),
        )

    def refusal(self, ip: IPAddress) -> str | None:
        """Why `ip` may not be contacted, or None when it may."""
        if self._listed(ip):
            return None
        embedded, how = _embedded_ipv4(ip)
        if embedded is not None:
            if self._listed(embedded):
                return None
            reason = self._refusal_of(embedded)
            return f"{ip} {how} {embedded}, {reason}" if reason else None
        reason = self._refusal_of(ip)
        return f"{ip} is {reason}" if reason else None

    def _listed(self, ip: IPAddress) -> bool:
        # Compare versions first: `IPv4Network.__contains__` does not, so an IPv6
        # address whose low bits match would count as inside an IPv4 network.
        plain = _unscoped(ip)
        return any(n.version == ip.version and plain in n for n in self.allow_networks)

    def _refusal_of(self, ip: IPAddress) -> str | None:
        ip = _unscoped(ip)
        if ip in METADATA_ADDRESSES:
            return "a cloud metadata address"
        ranges = _V4_RANGES if isinstance(ip, ipaddress.IPv4Address) else _V6_RANGES
        for network, reason, internal in ranges:
            if ip in network:
                return None if internal and self.allow_private else reason
        if not ip.is_global or ip.is_reserved:
            return "a special-purpose address that is not publicly routable"
        return None


def _unscoped(ip: IPAddress) -> IPAddress:
    # A zone index ("fe80::1%eth0") makes membership tests fail; judge the address.
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        return ipaddress.IPv6Address(ip.compressed.split("%", 1)[0])
    return ip


def _embedded_ipv4(ip: IPAddress) -> tuple[ipaddress.IPv4Address | None, str]:
    """The IPv4 address an IPv6 address carries and reaches, judged in its place."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None, ""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, "is IPv4-mapped"
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "is NAT64 for"
    if ip.sixtofour is not None:
        return ip.sixtofour, "is 6to4 for"
    return None, ""


def _parse_ipv4_part(part: str) -> int | None:
    try:
        if part[:2].lower() == "0x":
            return int(part[2:] or "0", 16)
        if len(part) > 1 and part.startswith("0"):
            return int(part[1:], 8)
        return int(part, 10) if part.isascii() and part.isdigit() else None
    except ValueError:
        return None


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address an IP-literal host names, in any notation a resolver accepts.

    Besides canonical forms this reads the legacy `inet_aton` notations that
    `getaddrinfo` accepts and that bypass naive checks: `2130706433`, `0x7f000001`,
    `0177.0.0.1`, `127.1`. Returns None for a host name.
    """
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(parts):
        return None
    values = [_parse_ipv4_part(p) for p in parts]
    if any(v is None for v in values):
        return None
    numbers = [v for v in values if v is not None]
    # a.b.c.d, a.b.c (c: 16 bits), a.b (b: 24 bits), a (32 bits), as inet_aton reads them.
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 1 << (8 * (5 - len(numbers))):
        return None
    value = last
    for index, number in enumerate(leading):
        value |= number << (24 - 8 * index)
    return ipaddress.IPv4Address(value)


def check_url(url: str, policy: AddressPolicy) -> str | None:
    """Why `url` cannot be a webhook URL, in words for the integrator; None when it can.

    Creation-time check, without DNS: names are resolved and checked again at send
    time, which is the authoritative check. Credentials in the URL are refused: the
    URL is shown in the console, the API and delivery logs, and the webhook's headers
    (e.g. `Authorization`) are the place for secrets.
    """
    if len(url) > MAX_URL_LENGTH:
        return f"The URL is longer than {MAX_URL_LENGTH} characters."
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as error:
        return f"The URL is not valid: {error}."
    if parsed.scheme not in ("http", "https"):
        return "The URL must start with http:// or https://."
    if not parsed.host:
        return "The URL has no host."
    if parsed.user is not None or parsed.password is not None:
        return "The URL may not contain credentials; send them in the webhook's headers."
    ip = parse_ip_literal(parsed.host)
    if ip is not None:
        reason = policy.refusal(ip)
        return f"The URL's host may not be contacted: {reason}." if reason else None
    name = parsed.host.rstrip(".").lower()
    if not _NAME.match(name):
        return "The URL's host is not a valid host name."
    if name == "localhost" or name.endswith(".localhost"):
        reason = policy.refusal(ipaddress.IPv4Address("127.0.0.1"))
        if reason:
            return "The URL's host may not be contacted: localhost is a loopback name."
    return None


class BlockedAddress(OSError):
    """A host resolved to an address the policy refuses; `reason` says which and why."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason


class GuardedResolver(AbstractResolver):
    """Resolves with the system resolver and refuses names that reach refused addresses.

    If ANY address of a name is refused, the whole name is refused (`BlockedAddress`)
    rather than only that address dropped: a name mixing public and internal addresses
    is a rebinding attempt or a misconfiguration, and dropping would make delivery
    depend on which address happens to be tried while hiding the problem from the
    integrator. aiohttp connects to exactly the addresses returned here, so the check
    and the connection cannot disagree. aiohttp does not call a resolver for IP-literal
    hosts: callers check those with `parse_ip_literal` and the policy before sending.
    """

    def __init__(self, policy: AddressPolicy, resolver: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._resolver = resolver or ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The vetted addresses of `host`; raises `BlockedAddress` if any is refused."""
        results = await self._resolver.resolve(host, port, family)
        for result in results:
            reason = self.policy.refusal(ipaddress.ip_address(result["host"]))
            if reason is not None:
                raise BlockedAddress(host, reason)
        return results

    async def close(self) -> None:
        """Release the underlying resolver."""
        await self._resolver.close()
