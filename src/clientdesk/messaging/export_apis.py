"""`GET /api/v1/messages/export`: the message log export, streamed."""

from collections.abc import AsyncIterator, Callable, Iterable, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

from clientdesk.core.api import ApiView
from clientdesk.core.requests import StaffApiRequest
from clientdesk.messaging.export import (
    CONTENT_TYPES,
    EXPORT_FILTERS,
    FORMATS,
    ExportResult,
    check_can_export,
    export_prepare,
    export_record,
    export_stream,
)
from clientdesk.messaging.permissions import MessagingPermission


def _stream_sync(chunks: Iterator[bytes], finish: Callable[[], None]) -> Iterator[bytes]:
    yield from chunks
    finish()


async def _stream(chunks: Iterator[bytes], finish: Callable[[], None]) -> AsyncIterator[bytes]:
    """Each chunk's queries run in Django's sync thread; the ledger record is written only
    after the last byte went out, so a client that leaves early records nothing."""
    take = sync_to_async(lambda: next(chunks, None), thread_sensitive=True)
    while (chunk := await take()) is not None:
        yield chunk
    await sync_to_async(finish, thread_sensitive=True)()


class _FirstRenderer(BaseContentNegotiation):
    """`?format=csv` is the export's own parameter (docs/AUDIT.md), not DRF's renderer override;
    errors still render as problem+json."""

    def select_parser(self, request: Request, parsers: list) -> None:  # type: ignore[override]
        return None

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        first = next(iter(renderers))
        return first, first.media_type


class MessagesExportApi(ApiView):
    content_negotiation_class = _FirstRenderer
    required_permissions = {"GET": MessagingPermission.EXPORT_MESSAGES}
    query_parameters = {"GET": EXPORT_FILTERS}

    @extend_schema(
        operation_id="messages_export",
        parameters=[
            OpenApiParameter("format", str, enum=list(FORMATS), required=True),
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="inclusive"),
            OpenApiParameter("until", OpenApiTypes.DATETIME, description="exclusive"),
            OpenApiParameter("client", str, description="client UUID or external id"),
            OpenApiParameter("sender", str, description="username of the staff sender"),
            OpenApiParameter(
                "direction", str, enum=["in", "out"], description="in: replies; out: sent"
            ),
        ],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV with header"),
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.STR, description="one JSON object per line"
            ),
        },
    )
    def get(self, request: StaffApiRequest) -> StreamingHttpResponse:
        user = request.user
        check_can_export(user)
        params = request.query_params
        export = export_prepare(
            format=params.get("format", ""),
            since=params.get("since"),
            until=params.get("until"),
            client=params.get("client"),
            sender=params.get("sender"),
            direction=params.get("direction"),
        )
        result = ExportResult()

        def finish() -> None:
            export_record(actor=user, request=export, result=result, via="api")

        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        chunks = export_stream(export, result)
        # Under ASGI a sync iterator would be read whole into memory first, so give it an
        # async one; a WSGI server (and the test client) reads a sync one as it goes.
        asgi = isinstance(request._request, ASGIRequest)
        response = StreamingHttpResponse(
            _stream(chunks, finish) if asgi else _stream_sync(chunks, finish),
            content_type=CONTENT_TYPES[export.format],
        )
        response["Content-Disposition"] = f'attachment; filename="messages-{stamp}.{export.format}"'
        response["Cache-Control"] = "no-store"
        return response
