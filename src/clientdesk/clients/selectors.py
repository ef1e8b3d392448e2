"""Reads for clients: lookup and search."""

import uuid

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import BooleanField, QuerySet
from django.db.models.expressions import RawSQL

from clientdesk.clients.models import Client
from clientdesk.clients.search_index import SQLITE_FTS_TABLE
from clientdesk.core.errors import NotFound
from clientdesk.core.text import fold

MAX_QUERY_TERMS = 8
MAX_TERM_LENGTH = 64
# The trigram indexes serve terms of three characters or more.
TRIGRAM = 3


def client_get(*, client_id: uuid.UUID | str) -> Client:
    try:
        return Client.objects.get(pk=client_id)
    except (Client.DoesNotExist, ValidationError, ValueError) as error:
        raise NotFound("No such client.") from error


def search_terms(query: str) -> list[str]:
    return [term[:MAX_TERM_LENGTH] for term in fold(query).split()[:MAX_QUERY_TERMS]]


_SQLITE_MATCH_SQL = (
    f"clients_client.id IN (SELECT client_id FROM {SQLITE_FTS_TABLE} "  # noqa: S608 - constants
    f"WHERE {SQLITE_FTS_TABLE} MATCH %s)"
)


def _sqlite_match(term: str) -> RawSQL:
    phrase = '"' + term.replace('"', '""') + '"'
    return RawSQL(  # noqa: S611 - the term is a bound parameter
        _SQLITE_MATCH_SQL,
        [phrase],
        output_field=BooleanField(),
    )


def client_search(*, query: str = "") -> QuerySet[Client]:
    """Clients whose name, email, phone or external id contain every word of `query`.

    Case and accents are ignored on both sides ("zoe" finds "Zoë").
    """
    clients = Client.objects.all()
    for term in search_terms(query):
        if connection.vendor == "sqlite" and len(term) >= TRIGRAM:
            clients = clients.filter(_sqlite_match(term))
        else:
            clients = clients.filter(search_text__contains=term)
    return clients.order_by("sort_name", "id")
