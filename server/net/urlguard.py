"""The SSRF guard for monitored URLs: http(s) only, and only hosts with public addresses.

Used twice: when a monitor is created (server.api.monitors) and on every
connection a check opens (server.monitors.probe), because DNS can change in between.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import socket
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
SCHEMES = ("http", "https")
RESOLVE_TIMEOUT = 5.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Metadata services answer on these without any auth; reaching them is the classic SSRF.
CLOUD_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")

# getaddrinfo has no timeout of its own; a worker thread lets us stop waiting for it.
_resolver = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="resolve")


class UnsafeURL(ValueError):
    """The URL may not be monitored; str(exc) says why, in a sentence for the caller."""


class ResolveError(OSError):
    """The host name did not resolve (or not in time)."""


def validate_url(url: str) -> tuple[str, int]:
    """Check the URL's shape (scheme, length, host) and return its (host, port)."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeURL(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise UnsafeURL("The URL contains spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"The URL is malformed: {exc}.") from exc
    if parts.scheme.lower() not in SCHEMES:
        raise UnsafeURL("Only http:// and https:// URLs can be monitored.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("Credentials in the URL are not supported.")
    host = parts.hostname
    if not host:
        raise UnsafeURL("The URL has no host.")
    if port is None:
        port = 443 if parts.scheme.lower() == "https" else 80
    if port == 0:
        raise UnsafeURL("The URL's port is invalid.")
    return host, port


def resolve(host: str, port: int, timeout: float = RESOLVE_TIMEOUT) -> list[IPAddress]:
    """Every address the host resolves to (an IP literal resolves to itself)."""
    literal = _ip_literal(host)
    if literal is not None:
        return [literal]
    future = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=timeout)
    except concurrent.futures.TimeoutError as exc:
        raise ResolveError(f"resolving {host} took longer than {timeout:g} s") from exc
    except (socket.gaierror, UnicodeError) as exc:
        raise ResolveError(f"{host} does not resolve") from exc
    addresses = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise ResolveError(f"{host} has no addresses")
    return addresses


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def blocked_reason(address: IPAddress) -> str | None:
    """Why a monitor may not connect to this address ("loopback", ...), or None if public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return blocked_reason(embedded)
    if address in CLOUD_METADATA:
        return "cloud metadata"
    for reason, flag in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if flag:
            return reason
    if not address.is_global:
        return "non-public"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one really leads to (mapped, NAT64, 6to4, Teredo)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def check_url(url: str, *, allow_private: bool, timeout: float = RESOLVE_TIMEOUT) -> None:
    """Refuse (UnsafeURL) a URL that is malformed or whose host has a non-public address.

    Every address the name resolves to is checked: a name with one public and
    one private address could be steered to the private one.
    """
    host, port = validate_url(url)
    if allow_private:
        return
    try:
        addresses = resolve(host, port, timeout)
    except ResolveError as exc:
        raise UnsafeURL(f"The URL's host cannot be checked: {exc}.") from exc
    for address in addresses:
        reason = blocked_reason(address)
        if reason:
            raise UnsafeURL(
                f"The URL's host {host} resolves to {address} ({reason}); monitors may only "
                "reach public addresses (an operator can set MONITOR_ALLOW_PRIVATE=1)."
            )
