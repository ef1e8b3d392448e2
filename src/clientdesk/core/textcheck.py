"""Text that can be stored and sent back: no NUL and no lone UTF-16 surrogate, checked once at
the boundary (JSON bodies in `core/parsers.py`, query strings, forms and stored headers in
`core/middleware.py`), so nothing downstream meets it and nothing is half-stored. The walk of a
JSON value also refuses NaN and Infinity, which JSON cannot carry back out."""

import argparse
import math
import re
from collections.abc import Iterator
from typing import Any

# PostgreSQL text cannot hold NUL; a lone surrogate cannot be encoded as UTF-8, so a row holding
# one breaks every page and API response that shows it.
_INVALID = re.compile("[\x00\ud800-\udfff]")
MAX_JSON_DEPTH = 32


def text_problem(value: str) -> str | None:
    match = _INVALID.search(value)
    if match is None:
        return None
    if match.group() == "\x00":
        return "must not contain the NUL character (\\u0000)."
    return (
        f"must be valid Unicode text: a lone surrogate (\\u{ord(match.group()):04x}) "
        "is not a character."
    )


def invalid_text(data: Any, *, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(field path, problem) for every invalid string in `data`, keys included, walking
    without recursion so any depth is safe; nesting past MAX_JSON_DEPTH is itself a problem."""
    stack: list[tuple[str, Any, int]] = [(prefix, data, 0)]
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, str):
            if problem := text_problem(value):
                yield path or "non_field_errors", problem
        elif isinstance(value, float) and not math.isfinite(value):
            yield (
                path or "non_field_errors",
                "must be a finite number (NaN and Infinity are not JSON).",
            )
        elif isinstance(value, (dict, list)):
            if depth >= MAX_JSON_DEPTH:
                yield path or "non_field_errors", f"is nested more than {MAX_JSON_DEPTH} deep."
                continue
            if isinstance(value, dict):
                for key, item in value.items():
                    name = f"{path}.{key}" if path else str(key)
                    if isinstance(key, str) and (problem := text_problem(key)):
                        yield (path or "non_field_errors"), f"has a key that {problem}"
                        continue
                    stack.append((name, item, depth + 1))
            else:
                for index, item in enumerate(value):
                    stack.append((f"{path}[{index}]", item, depth + 1))


def text_argument(value: str) -> str:
    """An argparse `type` for a command's text argument: bytes that are not UTF-8 reach Python as
    lone surrogates, and those or a NUL are a usage error naming the rule, not a traceback from
    the database."""
    if problem := text_problem(value):
        raise argparse.ArgumentTypeError(problem)
    return value
