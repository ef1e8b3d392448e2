"""Page-number pagination without COUNT(*), which costs a full scan on large tables."""

from dataclasses import dataclass
from typing import Generic, TypeVar

from django.db.models import Model, QuerySet

M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class Page(Generic[M]):
    items: list[M]
    number: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1


def parse_page(value: str | None) -> int:
    """A page number from a query string; anything that is not a positive integer is page 1."""
    try:
        number = int(value or 1)
    except ValueError:
        return 1
    return min(max(1, number), 100_000)


def paginate(queryset: QuerySet[M], *, page: int, size: int) -> Page[M]:
    offset = (page - 1) * size
    items = list(queryset[offset : offset + size + 1])
    return Page(items=items[:size], number=page, has_next=len(items) > size)
