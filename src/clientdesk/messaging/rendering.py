"""Strict rendering of message text: what the client receives, or an error naming the problem.

Message text is a Liquid template (python-liquid: no attribute or method access, bounded
loops and output). Every variable comes from the catalogue; a variable that is unknown, or
known but empty for this client, stops the send with an error that names every such
variable. `{{ name | default: "there" }}` gives a fallback.
"""

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from liquid import Environment, Undefined
from liquid.exceptions import LiquidError, LiquidSyntaxError, ResourceLimitError

from clientdesk.accounts.models import User
from clientdesk.clients.models import Client
from clientdesk.core.errors import ValidationFailed


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
    ]
}

_blank_outputs: ContextVar[list[str]] = ContextVar("blank_outputs")


class _RecordingUndefined(Undefined):
    """Undefined that notes every variable printed without a value (the `default` filter
    never prints it, so fallbacks stay allowed)."""

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


def _name_list(names: list[str]) -> str:
    return ", ".join("{{" + n + "}}" for n in names)


def render_message(*, source: str, client: Client, sender: User) -> Rendered:
    """Render `source` for `client`; raise RenderFailed naming what is wrong."""
    try:
        template = _env.from_string(source)
        used = list(template.analyze().globals)
    except LiquidSyntaxError as error:
        line, column = _position(source, error)
        raise RenderFailed(
            f"The message has a template error at line {line}, column {column}: {error.message}.",
            line=line,
            column=column,
        ) from error
    except LiquidError as error:
        raise RenderFailed(f"The message has a template error: {error.message}.") from error

    unknown = [name for name in used if name not in CATALOGUE]
    context = {}
    for name in used:
        if name in CATALOGUE:
            value = CATALOGUE[name].value(client, sender)
            if value not in (None, ""):
                context[name] = value

    blank: list[str] = []
    token = _blank_outputs.set(blank)
    try:
        body = template.render(**context)
    except ResourceLimitError as error:
        raise RenderFailed(f"The message is too complex to render: {error.message}.") from error
    except LiquidError as error:
        raise RenderFailed(f"The message cannot be rendered: {error.message}.") from error
    finally:
        _blank_outputs.reset(token)

    missing = list(dict.fromkeys([*unknown, *(n for n in blank if n not in unknown)]))
    if missing:
        problems = []
        if unknown:
            problems.append(f"unknown variable {_name_list(unknown)}")
        empty = [n for n in missing if n not in unknown]
        if empty:
            problems.append(f"{client.full_name} has no value for {_name_list(empty)}")
        raise RenderFailed(
            "Not sent: " + "; ".join(problems) + ".",
            missing_variables=missing,
        )
    if len(body) > settings.MESSAGE_MAX_LENGTH:
        raise RenderFailed(
            f"The message is {len(body):,} characters once variables are filled in; "
            f"the limit is {settings.MESSAGE_MAX_LENGTH:,}."
        )
    if not body.strip():
        raise RenderFailed("The message is empty once variables are filled in.")
    return Rendered(body=body, variables={k: context[k] for k in used if k in context})


def _position(source: str, error: LiquidSyntaxError) -> tuple[int, int]:
    token = getattr(error, "token", None)
    index = getattr(token, "start_index", None)
    if not isinstance(index, int):
        return 1, 1
    before = source[:index]
    return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1
