"""Template tags for messages: where a message stands in the client's cabinet, and which
language variant of a template a client gets, and why."""

from django import template

from clientdesk.clients.models import Client
from clientdesk.clients.validators import LANGUAGE_CHOICES
from clientdesk.messaging.models import CabinetStatus, Message

register = template.Library()
_LANGUAGE_NAMES = dict(LANGUAGE_CHOICES)


@register.simple_tag
def cabinet_status(message: Message, client: Client) -> CabinetStatus:
    return message.cabinet_status(client)


def _language(code: str) -> str:
    return f"{_LANGUAGE_NAMES.get(code, code)} ({code})"


@register.simple_tag
def variant_reason(chosen: str, client: Client) -> str:
    """ "German (de) variant — the client's language is de", or why another variant is used."""
    wanted = client.language
    if chosen == wanted:
        return f"{_language(chosen)} variant — the client's language is {wanted}."
    if chosen == wanted.split("-")[0]:
        return (
            f"{_language(chosen)} variant — no {_language(wanted)} variant exists for this "
            f"template, so the base language is used; the client's language is {wanted}."
        )
    return (
        f"{_language(chosen)} variant, the template's default — no {_language(wanted)} variant "
        f"exists for this template; the client's language is {wanted}."
    )
