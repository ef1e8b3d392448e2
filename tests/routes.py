"""Every route of the site outside the admin, with its view, for tests that walk them all."""

from collections.abc import Iterator
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver


def site_routes() -> Iterator[tuple[str, Any]]:
    def walk(patterns: Any, prefix: str) -> Iterator[tuple[str, Any]]:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                if str(entry.pattern) != "admin/":
                    yield from walk(entry.url_patterns, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern):
                yield prefix + str(entry.pattern), entry.callback

    yield from walk(get_resolver().url_patterns, "/")
