"""Strict rendering of message text: what the client receives, or an error naming the problem.

Message text is a Liquid template (python-liquid): no attribute or method access beyond the
variable catalogue, bounded loops and output. A variable is a built-in (the catalogue below) or
one of the client's custom attributes by name. A variable that is unknown, or has no value for
this client, stops the send with an error naming every such variable, unless the template gives
a fallback: `{{ nickname | default: "there" }}`.
"""

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.utils import formats, timezone, translation
from liquid import Environment, Undefined
from liquid.exceptions import LiquidError, LiquidSyntaxError, ResourceLimitError

from clientdesk.accounts.models import User
from clientdesk.clients.models import Client
from clientdesk.clients.validators import ATTRIBUTE_NAME
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


_env = _MessageEnvironment(undefined=_RecordingUndefined)


@dataclass(frozen=True)
class Rendered:
    body: str
    variables: dict[str, Any] = field(default_factory=dict)


class RenderFailed(ValidationFailed):
    type_slug = "render-failed"
    title = "The message cannot be rendered"


def _braces(names: list[str]) -> str:
    return ", ".join("{{" + n + "}}" for n in names)


def _has_value(value: Any) -> bool:
    return value is not None and value != ""


def variable_values(*, client: Client, sender: User) -> dict[str, Any]:
    """Every variable this client offers, built-ins first, with its value (maybe empty)."""
    values: dict[str, Any] = {
        name: attr_value
        for name, attr_value in client.attributes.items()
        if ATTRIBUTE_NAME.match(name) and name not in CATALOGUE
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
    """Refuse paths that can never resolve: dotted names outside the catalogue (attributes
    are flat), such as `{{ sender.password }}` or `{{ firstName.size }}`."""
    bad = [p for p in paths if "." in p and p not in CATALOGUE]
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
    try:
        body = template.render(**_liquid_context(values))
    except ResourceLimitError as error:
        raise RenderFailed(f"The message is too complex to render: {error.message}.") from error
    except LiquidError as error:
        raise RenderFailed(f"The message cannot be rendered: {error.message}.") from error
    finally:
        _blank_outputs.reset(token)

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


def _position(source: str, error: LiquidSyntaxError) -> tuple[int, int]:
    token = getattr(error, "token", None)
    index = getattr(token, "start_index", None)
    if not isinstance(index, int):
        return 1, 1
    before = source[:index]
    return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1
