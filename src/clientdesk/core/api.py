"""The base of the API views of every app (what each takes), bounded query and body fields,
and page links."""

import functools
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any, ClassVar

from django.http import HttpRequest
from django.utils import timezone
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.views import APIView

from clientdesk.core.bounded import Refused, parse_instant, parse_whole
from clientdesk.core.errors import ValidationFailed
from clientdesk.core.pagination import MAX_PAGE, Page


class WholeNumberField(serializers.IntegerField):
    """An integer within its bounds through the one bounded parser (`core/bounded.py`): ASCII
    digits or a JSON integer; "١٢", "1.0", booleans and 5,000 digits are refused."""

    def __init__(self, *, min_value: int, max_value: int, **kwargs: Any) -> None:
        super().__init__(min_value=min_value, max_value=max_value, **kwargs)

    def to_internal_value(self, data: Any) -> int:
        assert self.min_value is not None and self.max_value is not None
        try:
            return parse_whole(data, minimum=self.min_value, maximum=self.max_value)
        except Refused as error:
            raise serializers.ValidationError(str(error)) from error


class InstantField(serializers.DateTimeField):
    """An ISO 8601 instant within the years 2 to 9998 UTC (`core/bounded.py`), as an aware UTC
    datetime; without an offset it is read in the current time zone, as DRF's own field does."""

    def to_internal_value(self, value: Any) -> datetime:
        try:
            return parse_instant(value, naive=timezone.get_current_timezone())
        except Refused as error:
            raise serializers.ValidationError(str(error)) from error


class PageQuerySerializer(serializers.Serializer):
    page = WholeNumberField(min_value=1, max_value=MAX_PAGE, default=1)
    page_size = WholeNumberField(min_value=1, max_value=100, default=25)


def page_links(request: Request | HttpRequest, page: Page[Any]) -> dict[str, Any]:
    def link(number: int) -> str:
        params = request.GET.copy()
        params["page"] = str(number)
        return request.build_absolute_uri(f"{request.path}?{params.urlencode()}")

    return {
        "page": page.number,
        "next": link(page.number + 1) if page.has_next else None,
        "previous": link(page.number - 1) if page.has_previous else None,
    }


# --- what each view takes ------------------------------------------------------------------------

QueryDeclaration = type[serializers.Serializer] | Collection[str]
"""A method's accepted query parameters: the serializer that reads them, or their names."""


class UnknownParameters(ValidationFailed):
    """Query parameters an endpoint does not take: refused, so that a typo (or a filter this
    version lacks) never passes as "no filter" and answers something else than was asked."""

    type_slug = "unknown-parameters"

    def __init__(self, names: list[str]) -> None:
        shown = [name[:100] for name in names[:20]]
        super().__init__(
            f"Unknown query parameters: {', '.join(shown)}. This endpoint does not take them.",
            unknown_parameters=shown,
            errors={name: ["Not a query parameter of this endpoint."] for name in shown},
        )


def query_names(declaration: QueryDeclaration) -> frozenset[str]:
    """The parameter names a declaration accepts."""
    return _names(declaration if isinstance(declaration, type) else tuple(declaration))


@functools.cache
def _names(declaration: type[serializers.Serializer] | tuple[str, ...]) -> frozenset[str]:
    if isinstance(declaration, type):
        return frozenset(declaration().fields)
    return frozenset(declaration)


def check_query(request: HttpRequest | Request, accepted: QueryDeclaration) -> None:
    """UnknownParameters naming every query parameter not in `accepted`."""
    names = query_names(accepted)
    unknown = sorted(name for name in request.GET if name not in names)
    if unknown:
        raise UnknownParameters(unknown)


class ApiView(APIView):
    """The base of every API view. Beside `required_permissions` (`core/gate.py`) it declares
    `query_parameters`: per method, the serializer that reads the query (or the names); a
    method without one takes none, HEAD and OPTIONS take what GET takes. Checked once the
    caller passed authentication and permission, so the order of answers is 404, 405
    (`ApiRouteMiddleware`), 401, 403, then 422."""

    query_parameters: ClassVar[Mapping[str, QueryDeclaration]] = {}

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        method = "GET" if request.method in ("HEAD", "OPTIONS") else str(request.method)
        check_query(request, self.query_parameters.get(method, ()))


def allowed_methods(view_class: type) -> list[str]:
    """The methods a class-based view answers (HEAD wherever GET is), for 405 and `Allow`."""
    names = [m for m in getattr(view_class, "http_method_names", ()) if hasattr(view_class, m)]
    if "get" in names and "head" not in names:
        names.append("head")
    return sorted(m.upper() for m in names)
