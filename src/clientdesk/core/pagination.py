"""Page-number pagination without COUNT(*), which costs a full scan on large tables."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from django.db import connection
from django.db.models import BooleanField, Field, Model, QuerySet
from django.db.models.expressions import RawSQL

from clientdesk.core.bounded import Refused, parse_whole, refused

M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class Page(Generic[M]):
    items: list[M]
    number: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1


MAX_PAGE = 100_000


def parse_page(value: str | None) -> int:
    """A page number from a page's query string (1 when absent); ValidationFailed naming `page`
    for anything else than a whole number from 1 to MAX_PAGE."""
    if value is None or value == "":
        return 1
    try:
        return parse_whole(value, minimum=1, maximum=MAX_PAGE)
    except Refused as error:
        raise refused("page", error, value) from error


def paginate(queryset: QuerySet[M], *, page: int, size: int) -> Page[M]:
    offset = (page - 1) * size
    items = list(queryset[offset : offset + size + 1])
    return Page(items=items[:size], number=page, has_next=len(items) > size)


def keyset_beyond(model: type[Model], *, created_at: datetime, pk: Any, descending: bool) -> RawSQL:
    """Rows after (ascending) or before (descending) `(created_at, pk)` as one row-value
    comparison, which both databases answer from a (created_at, id) index; the equivalent OR
    of two conditions made every page a scan at a million rows."""
    meta = model._meta
    table, key = meta.db_table, meta.pk
    assert key is not None
    created = meta.get_field("created_at")
    assert isinstance(created, Field)
    operator = "<" if descending else ">"
    # The text holds only the model's own table and column names; the values are parameters.
    return RawSQL(  # noqa: S611
        f'("{table}"."{created.column}", "{table}"."{key.column}") {operator} (%s, %s)',
        [
            created.get_db_prep_value(created_at, connection),
            key.get_db_prep_value(pk, connection),
        ],
        output_field=BooleanField(),
    )
