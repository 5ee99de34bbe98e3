"""Where webhooks may go: public addresses only, checked when a URL is set and again at
every connection, and what a failed delivery is called.

A webhook URL is the customer's, and the server POSTs to it: without a fence it is a
scanner of the operator's own network (loopback services, the cloud metadata address
169.254.169.254, private ranges), and the delivery status shown back maps them. So:

* `TargetPolicy.refusal` names why an address is not allowed: unspecified, loopback,
  link-local, site-local, private, multicast, reserved or not globally routable (IPv4
  and IPv6; IPv4 carried inside IPv6 — mapped, 6to4, NAT64, IPv4-compatible — is judged
  as the IPv4 it carries). Networks in ``webhook_allowed_networks`` are allowed anyway.
* `check_target` (at ``PUT /api/v1/webhook``): https only unless ``webhook_allow_http``;
  IPv4 written any way but four decimal numbers (``2130706433``, ``0x7f.1``, ``127.1``,
  ``0177.0.0.1``) is refused; a literal address is judged as it is, a name by every
  address it resolves to (one refused address refuses the URL).
* `FencedResolver` (every delivery): aiohttp resolves each new connection's host through
  it; it resolves once, judges every address and hands aiohttp only addresses it judged,
  so a name that changes its answer after the URL was set (DNS rebinding) is caught at
  connect time. TLS still verifies the certificate against the URL's host name (SNI).
  Literal addresses, which aiohttp connects to without a resolver, are judged by
  `literal_refusal` before each delivery.

`failure` turns what went wrong into the category a customer is shown (timeout, refused
connection, TLS error, DNS failure, blocked address, HTTP status): never a raw connector
error, which would describe the operator's network.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from tsa_server.fees import FieldError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.ip_network("64:ff9b::/96")

# Delivery failures as customers see them (GET /api/v1/webhook last_error).
TIMEOUT = "timeout"
REFUSED = "connection refused"
CONNECTION = "connection failed"
TLS = "TLS error"
DNS = "DNS failure"
BLOCKED = "blocked address"
PLAIN_HTTP = "plain http not allowed"
CATEGORIES = frozenset({TIMEOUT, REFUSED, CONNECTION, TLS, DNS, BLOCKED, PLAIN_HTTP})


class BlockedAddress(OSError):
    """A webhook host resolved to an address the policy refuses."""


@dataclass(frozen=True)
class TargetPolicy:
    """What webhook URLs may reach ([evidence] webhook_allow_http, _allowed_networks)."""

    allow_http: bool = False
    allowed_networks: tuple[str, ...] = ()

    def networks(self) -> tuple[Network, ...]:
        return tuple(ipaddress.ip_network(n, strict=False) for n in self.allowed_networks)

    def refusal(self, address: Address) -> str | None:
        """Why `address` may not be reached (None: it may)."""
        embedded = _embedded_ipv4(address)
        for net in self.networks():
            if address in net or (embedded is not None and embedded in net):
                return None
        return _kind(address)


def _embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or 1 < int(address) < 1 << 32:  # NAT64, IPv4-compatible
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _kind(address: Address) -> str | None:
    embedded = _embedded_ipv4(address)
    if embedded is not None and (kind := _kind(embedded)) is not None:
        return kind
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "scoped (link-local)"
        if address.is_site_local:
            return "site-local"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("not globally routable", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def _parse_literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _legacy_ipv4(host: str) -> bool:
    """Does the C library read `host` as an IPv4 address written another way?"""
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return _parse_literal(host) is None


def literal_refusal(host: str, policy: TargetPolicy) -> str | None:
    """For a host aiohttp connects to without resolving (an IP literal, or what looks
    like one to it): why it is refused, or None (also None for a name)."""
    address = _parse_literal(host)
    if address is not None:
        return policy.refusal(address)
    if ":" in host or host.replace(".", "").isdigit() or _legacy_ipv4(host):
        return "not a plain IP address"
    return None


async def resolve(host: str, port: int, family: int = socket.AF_UNSPEC) -> list[ResolveResult]:
    """Every address of `host` (OSError when there is none)."""
    resolver = ThreadedResolver()
    try:
        return await resolver.resolve(host, port, family=socket.AddressFamily(family))
    finally:
        await resolver.close()


class FencedResolver(AbstractResolver):
    """aiohttp's resolver for webhook connections: BlockedAddress unless every address
    of the host is allowed; aiohttp connects only to the addresses returned."""

    def __init__(self, policy: TargetPolicy) -> None:
        self.policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await resolve(host, port, family)
        check_addresses(host, (r["host"] for r in found), self.policy)
        return found

    async def close(self) -> None:
        return None


def check_addresses(host: str, addresses: Iterable[str], policy: TargetPolicy) -> None:
    for text in addresses:
        address = _parse_literal(text.split("%", 1)[0])
        why = "unreadable" if address is None else policy.refusal(address)
        if why is not None:
            raise BlockedAddress(f"{host} resolves to a {why} address ({text})")


async def check_target(url: str, policy: TargetPolicy, *, timeout_s: float = 5.0) -> None:
    """FieldError({"url": ...}) unless `url` (already `check_url`'d) may be a webhook."""

    def bad(reason: str) -> FieldError:
        return FieldError({"url": reason})

    parts = urlsplit(url)
    if parts.scheme != "https" and not policy.allow_http:
        raise bad("only https:// URLs: this server does not send notices over plain http")
    host = parts.hostname or ""
    if _legacy_ipv4(host):
        raise bad(f"write the IPv4 address {host!r} as four decimal numbers (a.b.c.d)")
    if (address := _parse_literal(host)) is not None:
        if (why := policy.refusal(address)) is not None:
            raise bad(f"{host} is a {why} address: webhooks reach public addresses only")
        return
    try:
        async with asyncio.timeout(timeout_s):
            found = await resolve(host, parts.port or (443 if parts.scheme == "https" else 80))
        check_addresses(host, (r["host"] for r in found), policy)
    except BlockedAddress as exc:
        raise bad(f"{exc}: webhooks reach public addresses only") from None
    except (OSError, TimeoutError):
        raise bad(f"the host name {host} does not resolve") from None


def failure(exc: BaseException) -> str:
    """The category of a failed delivery (module docstring)."""
    if isinstance(exc, BlockedAddress | aiohttp.InvalidURL):
        return BLOCKED
    if isinstance(exc, TimeoutError):  # aiohttp's timeouts are TimeoutErrors too
        return TIMEOUT
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return TLS
    if isinstance(exc, aiohttp.ClientConnectorError):  # resolving or connecting
        cause = exc.os_error
        if isinstance(cause, BlockedAddress):
            return BLOCKED
        if isinstance(cause, socket.gaierror):
            return DNS
        return REFUSED if cause.errno == errno.ECONNREFUSED else CONNECTION
    if isinstance(exc, ConnectionRefusedError):
        return REFUSED
    return CONNECTION


def shown_error(stored: Any) -> Any:
    """A stored last_error as customers see it: a category, an HTTP status, or nothing
    (errors recorded before categories are shown as a failed connection)."""
    if not stored or stored in CATEGORIES or str(stored).startswith("HTTP "):
        return stored
    return CONNECTION
