"""Helpers shared by the API views of every app."""

from typing import Any

from django.http import HttpRequest
from rest_framework import serializers
from rest_framework.request import Request

from clientdesk.core.pagination import Page


class PageQuerySerializer(serializers.Serializer):
    page = serializers.IntegerField(min_value=1, max_value=100_000, default=1)
    page_size = serializers.IntegerField(min_value=1, max_value=100, default=25)


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
