"""The SSRF guard: which webhook URLs and addresses Clientdesk may send to."""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import idna

from clientdesk.core.errors import ValidationFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2000
DEFAULT_PORTS = {"http": 80, "https": 443}


class UnsafeUrl(ValidationFailed):
    type_slug = "unsafe-url"


_V4_RULES: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(network), reason)
    for network, reason in (
        # Before 240/4, which holds it, so the reason is the more specific one.
        ("255.255.255.255/32", "broadcast"),
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private network"),
        ("100.64.0.0/10", "carrier-grade NAT"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local / cloud metadata"),
        ("172.16.0.0/12", "private network"),
        ("192.0.0.0/24", "reserved for protocol assignments"),
        ("192.0.2.0/24", "documentation range"),
        ("192.88.99.0/24", "reserved / former 6to4 relay"),
        ("192.168.0.0/16", "private network"),
        ("198.18.0.0/15", "benchmarking range"),
        ("198.51.100.0/24", "documentation range"),
        ("203.0.113.0/24", "documentation range"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
    )
)

_V6_RULES: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(network), reason)
    for network, reason in (
        ("::1/128", "loopback"),
        ("::/128", "unspecified"),
        ("fc00::/7", "private network"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "private network"),
        ("ff00::/8", "multicast"),
        ("2001:db8::/32", "documentation range"),
        ("3fff::/20", "documentation range"),
    )
)

# IPv6 ranges that carry an IPv4 address in their bits: the reason names the IPv4 target when it
# is itself forbidden, and the whole range is refused either way, since what a packet to it
# reaches depends on translators outside our view.
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why `ip` may not receive webhooks, in a few words a user understands; None if it may."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            kind, inner = embedded
            inner_reason = forbidden_reason(inner)
            return f"{inner_reason} via {kind}" if inner_reason else kind
        rules: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = _V6_RULES
    else:
        rules = _V4_RULES
    for network, reason in rules:
        if ip in network:
            return reason
    # The explicit ranges above give clear reasons; the standard library's registry catches the
    # special-purpose ranges they leave out (and those added after this was written).
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private network"
    if ip.is_reserved or ip.is_unspecified:
        return "reserved"
    if not ip.is_global:
        return "special-purpose range"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    if ip in _MAPPED:
        return "IPv4-mapped address", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _NAT64:
        return "NAT64 address", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _SIX_TO_FOUR:
        return "6to4 address", ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)
    return None


def resolve_checked(host: str, port: int, *, allow_private: bool) -> list[IPAddress]:
    """Every address `host` resolves to, in resolver order; all of them must be allowed."""
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except socket.gaierror as error:
        raise UnsafeUrl(f"{host} could not be resolved ({error.strerror}).") from error
    except UnicodeError as error:
        raise UnsafeUrl(f"{host} is not a valid host name.") from error
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeUrl(f"{host} could not be resolved (no addresses).")
    if allow_private:
        return addresses
    # One bad address is enough to refuse: a name that also points inside is not trustworthy,
    # and checking every one keeps a later fallback to another address safe.
    for address in addresses:
        reason = forbidden_reason(address)
        if reason is None:
            continue
        if _is_literal(host):
            raise UnsafeUrl(f"Refused: {address} is not a public address ({reason}).")
        raise UnsafeUrl(
            f"Refused: {host} resolves to {address}, which is not a public address ({reason})."
        )
    return addresses


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class WebhookTarget:
    """A webhook URL taken apart: `host` is ASCII (IDNA), without brackets; `port` is explicit."""

    scheme: str
    host: str
    port: int
    path: str
    query: str

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def parse_webhook_url(url: str) -> WebhookTarget:
    """Check the shape of a webhook URL (not where it points); raises UnsafeUrl saying what is
    wrong."""
    if not url:
        raise UnsafeUrl("Enter the URL of the endpoint.")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"The URL is too long ({len(url)} characters; at most {MAX_URL_LENGTH}).")
    # urlsplit silently drops tabs and newlines, so check before it sees them.
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in url):
        raise UnsafeUrl("The URL must not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
    except ValueError as error:
        raise UnsafeUrl(f"The URL could not be read ({error}).") from error
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        got = f" (got {scheme}://)" if scheme else ""
        raise UnsafeUrl(f"The URL must start with http:// or https://{got}.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl(
            "The URL must not contain a user name or password; "
            "the endpoint checks the webhook signature instead."
        )
    hostname = parts.hostname
    if not hostname:
        raise UnsafeUrl("The URL has no host name.")
    try:
        port = parts.port
    except ValueError as error:
        raise UnsafeUrl("The port must be a number from 1 to 65535.") from error
    if port is None:
        port = DEFAULT_PORTS[scheme]
    if not 1 <= port <= 65535:
        raise UnsafeUrl("The port must be a number from 1 to 65535.")
    return WebhookTarget(
        scheme=scheme,
        host=_ascii_host(hostname),
        port=port,
        path=parts.path or "/",
        query=parts.query,
    )


def _ascii_host(hostname: str) -> str:
    if hostname.isascii():
        return hostname
    try:
        # UTS 46 as browsers do, so a name like "straße.de" reaches the same host it would there.
        return idna.encode(hostname, uts46=True).decode("ascii")
    except idna.IDNAError as error:
        raise UnsafeUrl(f"{hostname} is not a valid host name.") from error


def validate_webhook_url(url: str, *, allow_private: bool) -> None:
    """Raise UnsafeUrl unless `url` is a well-formed http(s) URL whose host resolves only to
    addresses that may receive webhooks."""
    target = parse_webhook_url(url)
    resolve_checked(target.host, target.port, allow_private=allow_private)
