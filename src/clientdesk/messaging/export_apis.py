"""`GET /api/v1/messages/export`: the message log export, streamed."""

from collections.abc import Iterable

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.authentication import SessionAuthentication
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

from clientdesk.accounts.requests import StaffApiRequest
from clientdesk.core.api import ApiView
from clientdesk.messaging.export import (
    CONTENT_TYPES,
    EXPORT_FILTERS,
    FORMATS,
    check_can_export,
    export_prepare,
    export_run,
)
from clientdesk.messaging.permissions import MessagingPermission


class _FirstRenderer(BaseContentNegotiation):
    """`?format=csv` is the export's own parameter (docs/AUDIT.md), not DRF's renderer override;
    errors still render as problem+json."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
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
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        # A session is the Messages page's Export button; a token, an integration.
        session = isinstance(request.successful_authenticator, SessionAuthentication)
        via = "ui" if session else "api"
        # A synchronous iterator: a WSGI server reads it as it goes, and under ASGI
        # core.streaming hands it over a chunk at a time. Its ledger record is written when the
        # stream ends, however it ends (messaging.export.export_run).
        response = StreamingHttpResponse(
            export_run(actor=user, request=export, via=via),
            content_type=CONTENT_TYPES[export.format],
        )
        response["Content-Disposition"] = f'attachment; filename="messages-{stamp}.{export.format}"'
        response["Cache-Control"] = "no-store"
        return response
