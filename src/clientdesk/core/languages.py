"""Which of the client-facing languages (settings.LANGUAGES) a stored language code reads in.

A client's `language` is any code Django knows ("pt-br", "de-at", "sw"); the cabinet, the portal
e-mails and the unsubscribe page speak the client's language when Clientdesk has it, else its
base language ("pt-br" → "pt", "de-at" → "de"), else English. The code is untrusted text (an
import, an old row): only a short code of letters, digits and hyphens is looked up; anything
else (a path, NUL, megabytes) is English without a lookup.
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.utils import translation

# BCP 47 tags are at most 8 letters per subtag; 35 covers every tag Django knows.
_CODE = re.compile(r"^[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8}){0,3}$")


def supported_language(code: object) -> str:
    """The settings.LANGUAGES code that `code` reads in: itself, its base language, or
    LANGUAGE_CODE (English)."""
    if not isinstance(code, str) or len(code) > 35 or not _CODE.match(code):
        return settings.LANGUAGE_CODE
    supported = {known for known, _ in settings.LANGUAGES}
    wanted = code.lower().replace("_", "-")
    parts = wanted.split("-")
    for length in range(len(parts), 0, -1):
        candidate = "-".join(parts[:length])
        if candidate in supported:
            return candidate
    return settings.LANGUAGE_CODE


@contextmanager
def client_language(code: object) -> Iterator[str]:
    """Translate in the language `code` reads in (supported_language) inside the block, and
    restore the previous language after; yields the code used."""
    language = supported_language(code)
    with translation.override(language):
        yield language
