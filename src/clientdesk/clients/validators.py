"""Rules for client data, shared by the model (admin, services) and the API."""

import re
from typing import Any

from django.conf.global_settings import LANGUAGES
from django.core.exceptions import ValidationError

LANGUAGE_CODES = frozenset(code for code, _ in LANGUAGES)
# (code, English name) sorted by name, for menus: "German (de)" rather than a bare "de".
LANGUAGE_CHOICES = sorted(((code, str(name)) for code, name in LANGUAGES), key=lambda c: c[1])
ATTRIBUTE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")
MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_VALUE = 500
PHONE = re.compile(r"^\+?[0-9][0-9 ().-]{3,30}$")


def validate_language(value: str) -> None:
    if value not in LANGUAGE_CODES:
        raise ValidationError(
            f"{value!r} is not a known language code; use one such as 'en', 'de' or 'pt-br'."
        )


def validate_phone(value: str) -> None:
    if value and not PHONE.match(value):
        raise ValidationError(
            "Enter a phone number of digits, spaces and + ( ) - . only, e.g. '+44 20 7946 0958'."
        )


def validate_attributes(value: Any) -> None:
    if not isinstance(value, dict):
        raise ValidationError("Attributes must be a JSON object of name → value.")
    if len(value) > MAX_ATTRIBUTES:
        raise ValidationError(f"At most {MAX_ATTRIBUTES} attributes are allowed.")
    for name, item in value.items():
        if not ATTRIBUTE_NAME.match(str(name)):
            raise ValidationError(
                f"Attribute name {name!r} is not allowed: use letters, digits and _ "
                "(starting with a letter or _), up to 40 characters."
            )
        if isinstance(item, bool) or item is None:
            continue
        if isinstance(item, (int, float)):
            continue
        if not isinstance(item, str):
            raise ValidationError(f"Attribute {name!r} must be text, a number, true/false or null.")
        if len(item) > MAX_ATTRIBUTE_VALUE:
            raise ValidationError(
                f"Attribute {name!r} is longer than {MAX_ATTRIBUTE_VALUE} characters."
            )


def validate_external_id(value: str) -> None:
    if not value.strip() or value != value.strip():
        raise ValidationError("External id must not be blank or start/end with spaces.")
