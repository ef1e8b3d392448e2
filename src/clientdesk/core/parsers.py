"""The API's JSON parser: Django REST framework's, refusing what cannot be stored or answered."""

from typing import Any

from rest_framework import exceptions
from rest_framework.parsers import JSONParser

from clientdesk.core.textcheck import MAX_JSON_DEPTH, invalid_text


class CheckedJSONParser(JSONParser):
    """Nesting past the decoder's recursion limit is a 400, not a crash; NUL, lone surrogates,
    NaN, Infinity and nesting past MAX_JSON_DEPTH are a 422 naming each field."""

    # NaN and Infinity are not JSON (RFC 8259): read them, so that the answer names the field
    # (invalid_text) rather than failing the whole body.
    strict = False

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as error:
            raise exceptions.ParseError(
                f"JSON parse error - nested too deeply (at most {MAX_JSON_DEPTH} levels)."
            ) from error
        errors: dict[str, list[str]] = {}
        for field, problem in invalid_text(data):
            errors.setdefault(field, []).append(problem)
        if errors:
            raise exceptions.ValidationError(errors)
        return data
