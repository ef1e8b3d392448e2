"""The SSRF guard: refused ranges, resolution, and the shape of webhook URLs. No traffic leaves
the machine: names other than localhost are answered by a stand-in resolver."""

import ipaddress
import socket
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clientdesk.core.errors import ValidationFailed
from clientdesk.delivery.ssrf import (
    UnsafeUrl,
    forbidden_reason,
    parse_webhook_url,
    resolve_checked,
    validate_webhook_url,
)

# The ranges the guard promises to refuse, written out from the brief rather than imported, so
# the test states the requirement instead of repeating the implementation.
REFUSED_V4 = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
]
REFUSED_V6 = [
    "::1/128",
    "::/128",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
    "64:ff9b::/96",
    "2001:db8::/32",
    "::ffff:0:0/96",
    "2002::/16",
]
GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")

Resolver = dict[str, list[str]]


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    """Answers for the names in the returned table; IP literals still reach the real resolver,
    told not to look anything up."""
    table: Resolver = {}
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(
        host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[Any]:
        if host not in table:
            return real_getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        if not table[host]:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, port, 0, 0))
            if ":" in ip
            else (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, port))
            for ip in table[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table


# --- forbidden_reason ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private network"),
        ("172.16.5.4", "private network"),
        ("192.168.1.1", "private network"),
        ("fd12:3456::1", "private network"),
        ("169.254.169.254", "link-local / cloud metadata"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "broadcast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - an address under test, not a bind
        ("::", "unspecified"),
        ("192.0.2.10", "documentation range"),
        ("198.51.100.7", "documentation range"),
        ("203.0.113.99", "documentation range"),
        ("2001:db8::1", "documentation range"),
        ("198.18.0.1", "benchmarking range"),
        ("::ffff:127.0.0.1", "loopback via IPv4-mapped address"),
        ("::ffff:169.254.169.254", "link-local / cloud metadata via IPv4-mapped address"),
        ("2002:7f00:0001::1", "loopback via 6to4 address"),
        ("2002:a00:1::", "private network via 6to4 address"),
        ("64:ff9b::10.1.2.3", "private network via NAT64 address"),
    ],
)
def test_forbidden_reason_names_the_range(address: str, reason: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address", ["::ffff:93.184.216.34", "2002:5db8:d822::1", "64:ff9b::93.184.216.34"]
)
def test_translated_addresses_are_refused_even_with_a_public_ipv4_inside(address: str) -> None:
    # Where these end up depends on translators we cannot see; real endpoints never need them.
    assert forbidden_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700::1111", "2001:4860:4860::8888"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


@given(st.ip_addresses())
def test_forbidden_reason_never_raises(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    reason = forbidden_reason(ip)
    assert reason is None or (isinstance(reason, str) and reason)


@pytest.mark.parametrize("network", REFUSED_V4 + REFUSED_V6)
@given(data=st.data())
def test_every_address_in_a_listed_range_is_refused(network: str, data: st.DataObject) -> None:
    ip = data.draw(st.ip_addresses(network=network))
    assert forbidden_reason(ip) is not None


@given(st.ip_addresses())
def test_an_allowed_address_is_global_and_outside_every_listed_range(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    if forbidden_reason(ip) is not None:
        return
    assert ip.is_global
    assert not any(ip in ipaddress.ip_network(n) for n in REFUSED_V4 + REFUSED_V6)
    if ip.version == 6:
        assert ip in GLOBAL_UNICAST_V6


@given(st.ip_addresses(v=4), st.integers(min_value=0, max_value=2**80 - 1))
def test_embedded_ipv4_gives_the_reason(ip: ipaddress.IPv4Address, low_bits: int) -> None:
    inner = forbidden_reason(ip)
    mapped = ipaddress.IPv6Address((0xFFFF << 32) | int(ip))
    six_to_four = ipaddress.IPv6Address((0x2002 << 112) | (int(ip) << 80) | low_bits)
    for outer in (mapped, six_to_four):
        reason = forbidden_reason(outer)
        assert reason is not None
        if inner is not None:
            assert reason.startswith(f"{inner} via ")


# --- resolve_checked ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "::1",
        "10.0.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "::ffff:127.0.0.1",
        "2002:7f00:0001::1",
        "fe80::1",
    ],
)
def test_resolve_checked_refuses_private_literals(address: str) -> None:
    with pytest.raises(UnsafeUrl) as refused:
        resolve_checked(address, 443, allow_private=False)
    ip = ipaddress.ip_address(address)
    assert refused.value.detail == (
        f"Refused: {ip} is not a public address ({forbidden_reason(ip)})."
    )


def test_resolve_checked_refuses_a_name_resolving_to_loopback() -> None:
    with pytest.raises(UnsafeUrl, match=r"localhost resolves to 127\.0\.0\.1.*\(loopback\)"):
        resolve_checked("localhost", 80, allow_private=False)


def test_allow_private_returns_the_addresses() -> None:
    assert resolve_checked("localhost", 80, allow_private=True) == [
        ipaddress.IPv4Address("127.0.0.1")
    ]
    assert resolve_checked("[::1]", 80, allow_private=True) == [ipaddress.IPv6Address("::1")]


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700::1111"])
def test_resolve_checked_allows_public_literals(address: str) -> None:
    assert resolve_checked(address, 443, allow_private=False) == [ipaddress.ip_address(address)]


def test_every_resolved_address_is_checked(fake_dns: Resolver) -> None:
    fake_dns["hooks.example"] = ["93.184.216.34", "2606:4700::1111", "10.1.2.3"]
    with pytest.raises(UnsafeUrl) as refused:
        resolve_checked("hooks.example", 443, allow_private=False)
    assert refused.value.detail == (
        "Refused: hooks.example resolves to 10.1.2.3, which is not a public address "
        "(private network)."
    )


def test_resolve_checked_keeps_resolver_order_without_duplicates(fake_dns: Resolver) -> None:
    fake_dns["hooks.example"] = ["2606:4700::1111", "93.184.216.34", "2606:4700::1111"]
    assert resolve_checked("hooks.example", 443, allow_private=False) == [
        ipaddress.IPv6Address("2606:4700::1111"),
        ipaddress.IPv4Address("93.184.216.34"),
    ]


def test_unresolvable_host(fake_dns: Resolver) -> None:
    fake_dns["nowhere.example"] = []
    with pytest.raises(UnsafeUrl, match=r"^nowhere\.example could not be resolved"):
        resolve_checked("nowhere.example", 443, allow_private=True)


def test_unsafe_url_is_a_validation_failure() -> None:
    error = UnsafeUrl("x")
    assert isinstance(error, ValidationFailed)
    assert (error.status, error.type_slug) == (422, "unsafe-url")


# --- validate_webhook_url ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "Enter the URL"),
        ("ftp://example.com/hook", r"must start with http:// or https:// \(got ftp://\)"),
        ("example.com/hook", "must start with http:// or https://"),
        ("javascript:alert(1)", "must start with http:// or https://"),
        ("file:///etc/passwd", "must start with http:// or https://"),
        ("http:///hook", "no host name"),
        ("https://user:secret@example.com/hook", "user name or password"),
        ("https://user@example.com/hook", "user name or password"),
        ("https://example.com:0/hook", "port must be a number from 1 to 65535"),
        ("https://example.com:65536/hook", "port must be a number from 1 to 65535"),
        ("https://example.com:https/hook", "port must be a number from 1 to 65535"),
        ("https://exa mple.com/hook", "spaces or control characters"),
        ("https://example.com/ho\nok", "spaces or control characters"),
        ("https://example.com/" + "a" * 1981, r"too long \(2001 characters; at most 2000\)"),
        ("http://[::1/hook", "could not be read"),
    ],
)
def test_badly_formed_urls_are_refused_with_the_reason(url: str, message: str) -> None:
    with pytest.raises(UnsafeUrl, match=message):
        validate_webhook_url(url, allow_private=True)


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://127.0.0.1:8000/hook", "127.0.0.1"),
        ("http://localhost/hook", "127.0.0.1"),
        ("https://[::1]/hook", "::1"),
        ("https://[::ffff:7f00:1]/hook", "::ffff:7f00:1"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        # Other spellings of loopback that resolvers accept.
        ("http://2130706433/hook", "127.0.0.1"),
        ("http://0x7f.1/hook", "127.0.0.1"),
        ("http://0177.0.0.1/hook", "127.0.0.1"),
    ],
)
def test_private_targets_need_allow_private(url: str, address: str) -> None:
    with pytest.raises(UnsafeUrl, match=rf"{address}\b.*not a public address"):
        validate_webhook_url(url, allow_private=False)
    validate_webhook_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://93.184.216.34/hooks/clientdesk?token=abc",
        "HTTPS://[2606:4700::1111]:8443/hook",
        "http://93.184.216.34",
    ],
)
def test_public_urls_are_accepted(url: str) -> None:
    validate_webhook_url(url, allow_private=False)


def test_public_host_names_are_accepted(fake_dns: Resolver) -> None:
    fake_dns["hooks.example.com"] = ["93.184.216.34"]
    validate_webhook_url("https://hooks.example.com/in", allow_private=False)


def test_international_host_names_become_ascii(fake_dns: Resolver) -> None:
    fake_dns["xn--strae-oqa.example"] = ["93.184.216.34"]
    target = parse_webhook_url("https://straße.example/in")
    assert target.host == "xn--strae-oqa.example"
    validate_webhook_url("https://straße.example/in", allow_private=False)


@pytest.mark.parametrize(
    ("url", "host_header"),
    [
        ("https://hooks.example.com/in", "hooks.example.com"),
        ("https://hooks.example.com:443/in", "hooks.example.com"),
        ("http://hooks.example.com:8080/in", "hooks.example.com:8080"),
        ("http://[2606:4700::1111]/in", "[2606:4700::1111]"),
        ("http://[2606:4700::1111]:81/in", "[2606:4700::1111]:81"),
        ("HTTP://Hooks.Example.COM/in", "hooks.example.com"),
    ],
)
def test_host_header(url: str, host_header: str) -> None:
    assert parse_webhook_url(url).host_header == host_header


def test_parse_keeps_path_and_query() -> None:
    target = parse_webhook_url("https://hooks.example.com/a/b?x=1&y=2#frag")
    assert (target.scheme, target.port, target.path, target.query) == (
        "https",
        443,
        "/a/b",
        "x=1&y=2",
    )
    assert parse_webhook_url("http://hooks.example.com").path == "/"
