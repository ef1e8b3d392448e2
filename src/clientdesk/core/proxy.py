"""Which forwarded headers a request may carry: only the reverse proxy's (deploy/) are believed.

With `CLIENTDESK_BEHIND_PROXY=1`, Django reads the browser's scheme, host and port from
`X-Forwarded-Proto`, `-Host` and `-Port` (settings.py), and the client's address is the one the
proxy names in `X-Forwarded-For` (rate limits, login lockouts and every message's recorded IP
read `REMOTE_ADDR`). A process may also be reachable without the proxy (the Procfile binds
`0.0.0.0` by default), so these headers count only when the peer is in
`CLIENTDESK_TRUSTED_PROXIES`; from any other peer they are removed before anything reads them.
"""

import ipaddress
from collections.abc import Callable
from functools import cache

from django.conf import settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase

FORWARDED_HEADERS = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_FORWARDED",
)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@cache
def _networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in trusted)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(text: str, networks: tuple[Network, ...]) -> bool:
    address = _address(text)
    return address is not None and any(address in network for network in networks)


def client_address(forwarded_for: str, networks: tuple[Network, ...]) -> str | None:
    """The client as the proxies saw it: the rightmost address of `X-Forwarded-For` that is not
    a trusted proxy (addresses further left were written by the client and prove nothing);
    None when that address is not a valid IP."""
    hops = [hop.strip() for hop in forwarded_for.split(",")]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return str(address) if (address := _address(hop)) else None
    return str(address) if hops and (address := _address(hops[0])) else None


class ForwardedHeadersMiddleware:
    """Early, before anything reads the scheme, host or client address."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        meta = request.META
        if settings.BEHIND_PROXY and _trusted(
            meta.get("REMOTE_ADDR", ""), networks := _networks(tuple(settings.TRUSTED_PROXIES))
        ):
            forwarded_for = meta.get("HTTP_X_FORWARDED_FOR", "")
            if forwarded_for and (address := client_address(forwarded_for, networks)):
                meta["REMOTE_ADDR"] = address
        else:
            for name in FORWARDED_HEADERS:
                meta.pop(name, None)
        return self.get_response(request)
