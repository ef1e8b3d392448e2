"""Template filters for client data: custom attribute names as a person reads them."""

import re

from django import template

register = template.Library()
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@register.filter
def attribute_label(name: str) -> str:
    """ "account_manager" and "accountManager" → "Account manager"."""
    words = _CAMEL.sub(" ", str(name)).replace("_", " ").split()
    if not words:
        return str(name)
    text = " ".join(words).lower()
    return text[0].upper() + text[1:]
