"""Strict rendering of message text: what the client receives, or an error naming the problem.

Message text is a Liquid template (python-liquid): no attribute or method access beyond the
variable catalogue, bounded loops and output. A variable is a built-in (the catalogue below) or
one of the client's custom attributes by name. A variable that is unknown, or has no value for
this client, stops the send with an error naming every such variable, unless the template gives
a fallback: `{{ nickname | default: "there" }}`.
"""

import functools
import re
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.utils import formats, timezone, translation
from liquid import Environment, Undefined
from liquid.exceptions import FilterError, LiquidError, LiquidSyntaxError, ResourceLimitError

from clientdesk.accounts.models import User
from clientdesk.clients.models import Client
from clientdesk.clients.validators import ATTRIBUTE_NAME, MAX_ATTRIBUTE_VALUE
from clientdesk.core.errors import ValidationFailed


def _today(client: Client, sender: User) -> str:
    with translation.override(client.language):
        return formats.date_format(timezone.localdate(), "DATE_FORMAT")


@dataclass(frozen=True)
class Variable:
    name: str
    description: str
    value: Callable[[Client, User], Any]


CATALOGUE: dict[str, Variable] = {
    v.name: v
    for v in [
        Variable("firstName", "Client's first name", lambda c, s: c.first_name),
        Variable("lastName", "Client's last name", lambda c, s: c.last_name),
        Variable("fullName", "Client's full name", lambda c, s: c.full_name),
        Variable("email", "Client's email address", lambda c, s: c.email),
        Variable("phone", "Client's phone number", lambda c, s: c.phone),
        Variable("language", "Client's language code", lambda c, s: c.language),
        Variable("externalId", "Client's id in your CRM", lambda c, s: c.external_id),
        Variable("sender.firstName", "Your first name", lambda c, s: s.first_name),
        Variable("sender.fullName", "Your full name", lambda c, s: s.display_name),
        Variable("today", "Today's date, in the client's language", _today),
    ]
}

# Heads of dotted catalogue names; an attribute of that name would hide them.
_NAMESPACES = frozenset(name.split(".")[0] for name in CATALOGUE if "." in name)

_blank_outputs: ContextVar[list[str]] = ContextVar("blank_outputs")


class _RecordingUndefined(Undefined):
    """Undefined that notes every variable printed without a value. The `default` filter
    never prints it, so fallbacks stay allowed."""

    def __str__(self) -> str:
        _blank_outputs.get().append(self.name)
        return ""


class _MessageEnvironment(Environment):
    loop_iteration_limit = 1_000
    local_namespace_limit = 10_000
    context_depth_limit = 10
    output_stream_limit = 50_000


# Filters are the only way a template builds a value (ranges are lazy; loops, output and the
# namespace have the limits above), so every filter runs inside these bounds: its input and its
# result are measured, and the two that can grow a value many times over (join, replace) are
# refused before they run when their result would not fit.
MAX_TEXT = 50_000  # characters in one value
MAX_ITEMS = 1_000  # items in one array or range
MAX_NUMBER = 10**15  # magnitude of a number
MAX_WORK = 1_000_000  # characters and items that filters take and give in one render
MAX_NESTING = 5  # arrays within arrays

_work: ContextVar[list[int]] = ContextVar("render_work")


class RenderLimitError(ResourceLimitError):
    """A value or the work of one render would pass a bound; `limit` names it."""

    def __init__(self, message: str, *, limit: str) -> None:
        super().__init__(message, token=None)
        self.limit = limit


def _weight(value: Any, depth: int = 0) -> int:
    """Characters plus items of `value`, refusing what passes a bound before walking it."""
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, (int, float, Decimal)):
        if not (-MAX_NUMBER <= value <= MAX_NUMBER):
            raise RenderLimitError(
                f"numbers are limited to {len(str(MAX_NUMBER)) - 1} digits", limit="number"
            )
        return 1
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise RenderLimitError(
                f"a value may have at most {MAX_TEXT:,} characters", limit="text"
            )
        return len(value)
    if isinstance(value, (range, list, tuple, dict)):
        if len(value) > MAX_ITEMS:
            raise RenderLimitError(f"an array may have at most {MAX_ITEMS:,} items", limit="items")
        if depth >= MAX_NESTING:
            raise RenderLimitError(
                f"arrays may be nested at most {MAX_NESTING} deep", limit="nesting"
            )
        if isinstance(value, range):
            return len(value)
        items = value.values() if isinstance(value, dict) else value
        total = len(value)
        for item in items:
            total += _weight(item, depth + 1)
            if total > MAX_TEXT:
                raise RenderLimitError(
                    f"a value may have at most {MAX_TEXT:,} characters", limit="text"
                )
        return total
    return 1  # undefined, drops: nothing a template can grow


def _spend(amount: int) -> None:
    work = _work.get(None)
    if work is None:
        return
    work[0] += amount
    if work[0] > MAX_WORK:
        raise RenderLimitError(
            f"filters may handle at most {MAX_WORK:,} characters in one message", limit="work"
        )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _growth(name: str, value: Any, args: tuple[Any, ...]) -> int:
    """The size of the result of the filters that multiply their input, before they run."""
    if name == "join" and isinstance(value, (list, tuple, range)):
        separator = _text(args[0]) if args else " "
        return _weight(value) + len(separator) * len(value)
    if name in {"replace", "replace_first", "replace_last"} and isinstance(value, str) and args:
        old, new = (str(a) if isinstance(a, (str, int, float)) else "" for a in (*args, "")[:2])
        hits = 1 if name != "replace" else (value.count(old) if old else len(value) + 1)
        return len(value) + hits * len(new)
    return 0


_INJECTED = frozenset({"context", "environment"})  # what Liquid passes to some filters


def _bounded(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def run(value: Any, *args: Any, **kwargs: Any) -> Any:
        data = [*args, *(v for k, v in kwargs.items() if k not in _INJECTED)]
        _spend(_weight(value) + sum(_weight(a) for a in data))
        if _growth(name, value, args) > MAX_TEXT:
            raise RenderLimitError(
                f"a value may have at most {MAX_TEXT:,} characters", limit="text"
            )
        try:
            result = func(value, *args, **kwargs)
        except LiquidError:
            raise
        except (ArithmeticError, LookupError, ValueError, AttributeError) as error:
            # A filter given what it cannot use (`"abc" | compact: "x"` indexes a string):
            # the template's mistake, told as such, not a server error.
            raise FilterError(f"{name}: cannot use this value ({error})", token=None) from error
        _spend(_weight(result))
        return result

    return run


_env = _MessageEnvironment(undefined=_RecordingUndefined)
_env.filters.update({name: _bounded(name, func) for name, func in _env.filters.items()})


@dataclass(frozen=True)
class Rendered:
    body: str
    variables: dict[str, Any] = field(default_factory=dict)


class RenderFailed(ValidationFailed):
    type_slug = "render-failed"
    title = "The message cannot be rendered"


_LIQUID_LIMITS = {
    "LoopIterationLimitError": "loop_iterations",
    "OutputStreamLimitError": "output",
    "LocalNamespaceLimitError": "namespace",
    "ContextDepthError": "depth",
    "BlockNestingError": "nesting",
}


def _braces(names: list[str]) -> str:
    return ", ".join("{{" + n + "}}" for n in names)


def _has_value(value: Any) -> bool:
    return value is not None and value != ""


def variable_values(*, client: Client, sender: User) -> dict[str, Any]:
    """Every variable this client offers, built-ins first, with its value (maybe empty)."""
    values: dict[str, Any] = {
        name: attr_value
        for name, attr_value in client.attributes.items()
        if ATTRIBUTE_NAME.match(name) and name not in CATALOGUE and name not in _NAMESPACES
    }
    values.update({name: v.value(client, sender) for name, v in CATALOGUE.items()})
    return values


def _liquid_context(values: dict[str, Any]) -> dict[str, Any]:
    """Nest dotted names (sender.firstName) and leave out empty values, so they are undefined."""
    context: dict[str, Any] = {}
    for name, value in values.items():
        if not _has_value(value):
            continue
        head, _, rest = name.partition(".")
        if rest:
            context.setdefault(head, {})[rest] = value
        else:
            context[head] = value
    return context


def parse_template(source: str) -> tuple[Any, list[str]]:
    """Parse `source`; return the template and the variable paths it uses, in order.

    Raises RenderFailed with line and column for a syntax error."""
    template, paths = _parsed(source)
    return template, list(paths)


# Every send of a saved template, and every retry, parses the same text: parse each source
# once per process. Keyed by the text itself (its hash picks the slot); a parsed template holds
# no per-render state, so threads can share it. Errors are not cached.
@lru_cache(maxsize=512)
def _parsed(source: str) -> tuple[Any, tuple[str, ...]]:
    try:
        template = _env.from_string(source)
        analysis = template.analyze()
    except LiquidSyntaxError as error:
        line, column = _position(source, error)
        raise RenderFailed(
            f"Template error at line {line}, column {column}: {error.message}.",
            line=line,
            column=column,
        ) from error
    except LiquidError as error:
        raise RenderFailed(f"Template error: {error.message}.") from error
    paths = [
        ".".join(str(s) for s in var.segments)
        for variables in analysis.globals.values()
        for var in variables
    ]
    return template, tuple(dict.fromkeys(paths))


def check_template_variables(paths: list[str]) -> None:
    """Refuse paths that can never resolve to text: dotted names outside the catalogue
    (attributes are flat), such as `{{ sender.password }}` or `{{ firstName.size }}`, and the
    `sender` namespace itself."""
    # A namespace alone (`{{ sender }}`) is an object, not text: it would print Python's dict.
    bad = [p for p in paths if ("." in p and p not in CATALOGUE) or p in _NAMESPACES]
    if bad:
        raise RenderFailed(
            f"Not sent: unknown variable {_braces(bad)}.",
            missing_variables=bad,
        )


def render_message(*, source: str, client: Client, sender: User) -> Rendered:
    """Render `source` for `client`; raise RenderFailed naming what is wrong."""
    template, used = parse_template(source)
    check_template_variables(used)
    values = variable_values(client=client, sender=sender)
    blank: list[str] = []
    token = _blank_outputs.set(blank)
    work_token = _work.set([0])
    try:
        body = template.render(**_liquid_context(values))
    except RenderLimitError as error:
        raise RenderFailed(
            f"The message is too complex to render: {error.message}.", limit=error.limit
        ) from error
    except ResourceLimitError as error:
        raise RenderFailed(
            f"The message is too complex to render: {error.message}.",
            limit=_LIQUID_LIMITS.get(type(error).__name__, "resources"),
        ) from error
    except LiquidError as error:
        raise RenderFailed(f"The message cannot be rendered: {error.message}.") from error
    finally:
        _blank_outputs.reset(token)
        _work.reset(work_token)

    if blank:
        # A blank `sender` means one of the sender.* variables used here is empty.
        printed = {p for p in used if p in blank or p.split(".")[0] in blank}
        missing = [p for p in used if p in printed]
        unknown = [p for p in missing if p not in values]
        empty = [p for p in missing if p in values]
        problems = []
        if unknown:
            problems.append(
                f"unknown variable {_braces(unknown)} (no built-in variable or attribute of "
                f"{client.full_name} has that name)"
            )
        if empty:
            problems.append(f"{client.full_name} has no value for {_braces(empty)}")
        raise RenderFailed(
            "Not sent: " + "; ".join(problems) + ". Add a fallback such as "
            '{{ name | default: "…" }} or remove the variable.',
            missing_variables=missing,
        )
    if len(body) > settings.MESSAGE_MAX_LENGTH:
        raise RenderFailed(
            f"The message is {len(body):,} characters once variables are filled in; "
            f"the limit is {settings.MESSAGE_MAX_LENGTH:,}."
        )
    if not body.strip():
        raise RenderFailed("The message is empty once variables are filled in.")
    return Rendered(
        body=body, variables={p: values[p] for p in used if p in values and _has_value(values[p])}
    )


# A `{` that opens an output or a tag; alone or before anything else it is plain text.
_OPENING_BRACE = re.compile(r"\{(?=[{%])")


def literal_source(text: str) -> str:
    """Liquid source that renders to exactly `text`, so rendered text (a template's, for one
    client) can be edited and sent again as source without a value being read as markup: each
    opening `{` is written as the output `{{ "{" }}`. Text without `{{` or `{%` is unchanged."""
    return _OPENING_BRACE.sub('{{ "{" }}', text)


def check_renders_within_bounds(source: str) -> None:
    """Refuse text that passes a rendering bound even for a sample client whose attributes
    are as long as attributes may be: a template that cannot render is not saved."""
    _, used = parse_template(source)
    client = Client(
        first_name="Sample",
        last_name="Client",
        email="sample@example.com",
        phone="+1 555 0100",
        external_id="SAMPLE",
        language="en",
        attributes={p: "x" * MAX_ATTRIBUTE_VALUE for p in used if ATTRIBUTE_NAME.match(p)},
    )
    try:
        render_message(source=source, client=client, sender=User(first_name="Sample"))
    except RenderFailed as error:
        if "limit" in error.extra:
            raise


def _position(source: str, error: LiquidSyntaxError) -> tuple[int, int]:
    token = getattr(error, "token", None)
    index = getattr(token, "start_index", None)
    if not isinstance(index, int):
        return 1, 1
    before = source[:index]
    return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1
