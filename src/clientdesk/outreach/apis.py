"""Staff API for broadcasts and the outreach settings (docs/BROADCASTS.md, docs/API.md)."""

import uuid
from typing import Any

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.response import Response

from clientdesk.accounts.requests import StaffApiRequest
from clientdesk.core.api import ApiView, PageQuerySerializer, page_links
from clientdesk.core.errors import ValidationFailed
from clientdesk.core.pagination import paginate
from clientdesk.core.request_meta import RequestMeta
from clientdesk.core.time import iso_utc
from clientdesk.messaging.permissions import MessagingPermission
from clientdesk.outreach.models import Broadcast, BroadcastRecipient, RecipientStatus, SkipReason
from clientdesk.outreach.permissions import OutreachPermission
from clientdesk.outreach.selectors import (
    broadcast_get,
    broadcast_recipients,
    broadcasts_visible,
    outreach_settings_get,
)
from clientdesk.outreach.services import (
    broadcast_cancel,
    broadcast_create,
    broadcast_preview,
    broadcast_request_parse,
    check_can_manage_settings,
    outreach_settings_update,
    settings_representation,
)


def broadcast_representation(broadcast: Broadcast) -> dict[str, Any]:
    creator = broadcast.created_by
    return {
        "id": str(broadcast.pk),
        "status": broadcast.status,
        "category": broadcast.category,
        "created_by": {
            "id": str(creator.pk),
            "username": creator.username,
            "name": creator.display_name,
        },
        "created_at": iso_utc(broadcast.created_at),
        "audience": broadcast.audience,
        "body": broadcast.body,
        "template_id": str(broadcast.template_id) if broadcast.template_id else None,
        "template_version": broadcast.template_version,
        "expects_reply": broadcast.expects_reply,
        "send_at": iso_utc(broadcast.send_at),
        "send_at_local": broadcast.send_at_local or None,
        "recipients": broadcast.recipients,
        "sent": broadcast.sent,
        "skipped": broadcast.skipped,
        "cancelled": broadcast.cancelled,
        "pending": broadcast.pending,
        "recipients_sha256": broadcast.recipients_sha256,
        "completed_at": iso_utc(broadcast.completed_at),
        "cancelled_at": iso_utc(broadcast.cancelled_at),
    }


def recipient_representation(recipient: BroadcastRecipient) -> dict[str, Any]:
    return {
        "client_id": str(recipient.client_id),
        "status": recipient.status,
        "reason": recipient.reason or None,
        "message_id": str(recipient.message_id) if recipient.message_id else None,
        "due_at": iso_utc(recipient.due_at),
        "deliver_at": iso_utc(recipient.deliver_at),
    }


_COUNT = serializers.IntegerField()
_BROADCAST_SCHEMA = inline_serializer(
    "Broadcast",
    {
        "id": serializers.UUIDField(),
        "status": serializers.ChoiceField(["scheduled", "sending", "completed", "cancelled"]),
        "category": serializers.ChoiceField(["service", "outreach"]),
        "created_by": inline_serializer(
            "BroadcastCreator",
            {
                "id": serializers.UUIDField(),
                "username": serializers.CharField(),
                "name": serializers.CharField(),
            },
        ),
        "created_at": serializers.DateTimeField(),
        "audience": serializers.DictField(),
        "body": serializers.CharField(),
        "template_id": serializers.UUIDField(allow_null=True),
        "template_version": serializers.IntegerField(allow_null=True),
        "expects_reply": serializers.BooleanField(),
        "send_at": serializers.DateTimeField(allow_null=True),
        "send_at_local": serializers.CharField(allow_null=True),
        "recipients": _COUNT,
        "sent": _COUNT,
        "skipped": _COUNT,
        "cancelled": _COUNT,
        "pending": serializers.IntegerField(help_text="recipients - sent - skipped - cancelled"),
        "recipients_sha256": serializers.CharField(),
        "completed_at": serializers.DateTimeField(allow_null=True),
        "cancelled_at": serializers.DateTimeField(allow_null=True),
    },
)
_PREVIEW_SCHEMA = inline_serializer(
    "BroadcastDryRun",
    {
        "recipients": _COUNT,
        "skipped": serializers.DictField(child=serializers.IntegerField()),
        "preview": serializers.ListField(
            child=inline_serializer(
                "BroadcastPreviewItem",
                {
                    "client_id": serializers.UUIDField(),
                    "body": serializers.CharField(),
                    "deliver_at": serializers.DateTimeField(),
                },
            )
        ),
    },
)
_REQUEST_SCHEMA = inline_serializer(
    "BroadcastCreate",
    {
        "audience": inline_serializer(
            "BroadcastAudience",
            {
                "search": serializers.CharField(required=False),
                "language": serializers.CharField(required=False),
                "attributes": serializers.DictField(required=False),
                "client_ids": serializers.ListField(child=serializers.UUIDField(), required=False),
                "external_ids": serializers.ListField(
                    child=serializers.CharField(), required=False
                ),
            },
        ),
        "body": serializers.CharField(required=False),
        "template_id": serializers.UUIDField(required=False),
        "category": serializers.ChoiceField(["service", "outreach"]),
        "expects_reply": serializers.BooleanField(required=False),
        "send_at": serializers.DateTimeField(required=False),
        "send_at_local": serializers.CharField(
            required=False, help_text="Naive ISO local time, e.g. 2026-12-01T09:00:00."
        ),
        "attachments": serializers.ListField(
            child=serializers.UUIDField(),
            required=False,
            help_text="At most 5 of your own uploads; each recipient gets its own copy.",
        ),
        "dry_run": serializers.BooleanField(required=False),
    },
)
_IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description=(
        "Required unless dry_run: a fresh UUID per broadcast. A retry with the same key and "
        "body returns the first broadcast; the same key with another body is 422."
    ),
)


def _page_of(request: StaffApiRequest, page: Any, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {**page_links(request, page), "results": items}


class BroadcastListCreateApi(ApiView):
    required_permissions = {
        "GET": MessagingPermission.VIEW_MESSAGE,
        "POST": MessagingPermission.SEND_BROADCAST,
    }
    query_parameters = {"GET": PageQuerySerializer}

    @extend_schema(
        operation_id="broadcasts_list",
        parameters=[PageQuerySerializer],
        responses={
            200: inline_serializer(
                "BroadcastPage",
                {
                    "page": serializers.IntegerField(),
                    "next": serializers.URLField(allow_null=True),
                    "previous": serializers.URLField(allow_null=True),
                    "results": serializers.ListField(child=_BROADCAST_SCHEMA),
                },
            )
        },
    )
    def get(self, request: StaffApiRequest) -> Response:
        query = PageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = paginate(
            broadcasts_visible(user=request.user),
            page=query.validated_data["page"],
            size=query.validated_data["page_size"],
        )
        return Response(_page_of(request, page, [broadcast_representation(b) for b in page.items]))

    @extend_schema(
        operation_id="broadcasts_create",
        parameters=[_IDEMPOTENCY_KEY],
        request=_REQUEST_SCHEMA,
        responses={
            200: _PREVIEW_SCHEMA,
            202: _BROADCAST_SCHEMA,
            403: OpenApiResponse(description="No 'Send a broadcast' permission"),
            422: OpenApiResponse(
                description="Invalid input (`errors` names the field), or 0 recipients"
            ),
        },
    )
    def post(self, request: StaffApiRequest) -> Response:
        broadcast_request = broadcast_request_parse(request.data)
        assert isinstance(request.data, dict)  # broadcast_request_parse
        if request.data.get("dry_run"):
            preview = broadcast_preview(actor=request.user, request=broadcast_request)
            return Response(
                {
                    "recipients": preview.recipients,
                    "skipped": preview.skipped,
                    "preview": preview.preview,
                }
            )
        key = request.headers.get("Idempotency-Key")
        if key is None:
            raise ValidationFailed(
                "The Idempotency-Key header is required: send a fresh UUID per broadcast so "
                "a retry never creates a second one.",
                errors={"Idempotency-Key": ["This header is required."]},
            )
        broadcast, replayed = broadcast_create(
            actor=request.user,
            request=broadcast_request,
            idempotency_key=key,
            meta=RequestMeta.from_request(request),
        )
        response = Response(broadcast_representation(broadcast), status=status.HTTP_202_ACCEPTED)
        response["Location"] = f"/api/v1/broadcasts/{broadcast.pk}"
        if replayed:
            response["Idempotent-Replayed"] = "true"
        return response


class BroadcastDetailApi(ApiView):
    required_permissions = {"GET": MessagingPermission.VIEW_MESSAGE}

    @extend_schema(operation_id="broadcasts_read", responses={200: _BROADCAST_SCHEMA})
    def get(self, request: StaffApiRequest, broadcast_id: uuid.UUID) -> Response:
        broadcast = broadcast_get(user=request.user, broadcast_id=broadcast_id)
        return Response(broadcast_representation(broadcast))


class RecipientQuery(PageQuerySerializer):
    class Meta:
        ref_name = "BroadcastRecipientQuery"

    status = serializers.ChoiceField(RecipientStatus.values, required=False)
    reason = serializers.ChoiceField(SkipReason.values, required=False)


class BroadcastRecipientsApi(ApiView):
    required_permissions = {"GET": MessagingPermission.VIEW_MESSAGE}
    query_parameters = {"GET": RecipientQuery}

    @extend_schema(
        operation_id="broadcasts_recipients",
        parameters=[RecipientQuery],
        responses={
            200: inline_serializer(
                "BroadcastRecipientPage",
                {
                    "page": serializers.IntegerField(),
                    "next": serializers.URLField(allow_null=True),
                    "previous": serializers.URLField(allow_null=True),
                    "results": serializers.ListField(
                        child=inline_serializer(
                            "BroadcastRecipient",
                            {
                                "client_id": serializers.UUIDField(),
                                "status": serializers.ChoiceField(RecipientStatus.values),
                                "reason": serializers.ChoiceField(
                                    SkipReason.values, allow_null=True
                                ),
                                "message_id": serializers.UUIDField(allow_null=True),
                                "due_at": serializers.DateTimeField(),
                                "deliver_at": serializers.DateTimeField(allow_null=True),
                            },
                        )
                    ),
                },
            )
        },
    )
    def get(self, request: StaffApiRequest, broadcast_id: uuid.UUID) -> Response:
        query = RecipientQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        broadcast = broadcast_get(user=request.user, broadcast_id=broadcast_id)
        page = paginate(
            broadcast_recipients(
                broadcast=broadcast,
                status=query.validated_data.get("status"),
                reason=query.validated_data.get("reason"),
            ),
            page=query.validated_data["page"],
            size=query.validated_data["page_size"],
        )
        return Response(_page_of(request, page, [recipient_representation(r) for r in page.items]))


class BroadcastCancelApi(ApiView):
    required_permissions = {"POST": MessagingPermission.SEND_BROADCAST}

    @extend_schema(
        operation_id="broadcasts_cancel",
        request=None,
        responses={
            200: _BROADCAST_SCHEMA,
            409: OpenApiResponse(description="The broadcast is completed or cancelled already"),
        },
    )
    def post(self, request: StaffApiRequest, broadcast_id: uuid.UUID) -> Response:
        broadcast = broadcast_cancel(actor=request.user, broadcast_id=broadcast_id)
        return Response(broadcast_representation(broadcast))


_SETTINGS_SCHEMA = inline_serializer(
    "OutreachSettings",
    {
        "quiet_hours": serializers.ListField(
            child=serializers.CharField(),
            allow_null=True,
            help_text='["21:00", "08:00"]: local start and end in each client\'s zone; null: none',
        ),
        "default_timezone": serializers.CharField(),
        "max_outreach_per_week": serializers.IntegerField(allow_null=True),
    },
)


class OutreachSettingsApi(ApiView):
    required_permissions = {
        "GET": OutreachPermission.MANAGE_OUTREACH_SETTINGS,
        "PUT": OutreachPermission.MANAGE_OUTREACH_SETTINGS,
    }

    @extend_schema(operation_id="outreach_settings_read", responses={200: _SETTINGS_SCHEMA})
    def get(self, request: StaffApiRequest) -> Response:
        check_can_manage_settings(request.user)
        return Response(settings_representation(outreach_settings_get()))

    @extend_schema(
        operation_id="outreach_settings_update",
        request=_SETTINGS_SCHEMA,
        responses={
            200: _SETTINGS_SCHEMA,
            403: OpenApiResponse(description="Administrators only"),
            422: OpenApiResponse(description="A field is invalid; `errors` names it"),
        },
    )
    def put(self, request: StaffApiRequest) -> Response:
        settings = outreach_settings_update(actor=request.user, data=request.data)
        return Response(settings_representation(settings))
