"""Staff API for follow-up: messages across clients with their reply state, and the policy."""

from datetime import datetime
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from clientdesk.accounts.requests import StaffApiRequest
from clientdesk.core.api import ApiView, InstantField, WholeNumberField
from clientdesk.core.errors import ValidationFailed
from clientdesk.core.time import iso_utc
from clientdesk.followup.models import FollowUpPolicy
from clientdesk.followup.permissions import FollowupPermission
from clientdesk.followup.policy import policy_fields, policy_preview
from clientdesk.followup.selectors import MessageFilters, messages_list, policy_get
from clientdesk.followup.services import check_can_manage_policy, policy_update
from clientdesk.messaging.apis import _MESSAGE_SCHEMA
from clientdesk.messaging.permissions import MessagingPermission
from clientdesk.messaging.representations import message_representation
from clientdesk.messaging.selectors import NO_FILES, deliveries_by_message, files_by_message


class MessageListApi(ApiView):
    required_permissions = {"GET": MessagingPermission.VIEW_MESSAGE}

    class QuerySerializer(serializers.Serializer):
        class Meta:
            ref_name = "MessageListQuery"

        client = serializers.UUIDField(required=False)
        direction = serializers.ChoiceField(["in", "out"], required=False)
        awaiting_reply = serializers.BooleanField(required=False, allow_null=True, default=None)
        needs_response = serializers.BooleanField(required=False, allow_null=True, default=None)
        overdue = serializers.BooleanField(required=False, allow_null=True, default=None)
        # open: our messages still waiting for a requested document; received: those whose
        # every request was received.
        documents = serializers.ChoiceField(["open", "received"], required=False)
        sender = serializers.UUIDField(required=False)
        since = InstantField(required=False)
        until = InstantField(required=False)
        cursor = serializers.CharField(required=False, max_length=500)
        limit = WholeNumberField(min_value=1, max_value=100, default=50)

    query_parameters = {"GET": QuerySerializer}

    @extend_schema(
        operation_id="messages_list",
        parameters=[QuerySerializer],
        responses={
            200: inline_serializer(
                "MessageList",
                {
                    # A fresh instance of the messaging API's Message component.
                    "results": serializers.ListField(child=type(_MESSAGE_SCHEMA)()),
                    "next": serializers.URLField(allow_null=True),
                },
            )
        },
    )
    def get(self, request: StaffApiRequest) -> Response:
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        page = messages_list(
            user=request.user,
            filters=MessageFilters(
                client_id=data.get("client"),
                direction=data.get("direction"),
                awaiting_reply=data["awaiting_reply"],
                needs_response=data["needs_response"],
                overdue=data["overdue"],
                documents=data.get("documents"),
                sender_id=data.get("sender"),
                since=data.get("since"),
                until=data.get("until"),
            ),
            cursor=data.get("cursor"),
            limit=data["limit"],
        )
        deliveries = deliveries_by_message(m.id for m in page.items)
        files = files_by_message(m.id for m in page.items)
        next_link = None
        if page.next_cursor:
            params = request.GET.copy()
            params["cursor"] = page.next_cursor
            next_link = request.build_absolute_uri(f"{request.path}?{params.urlencode()}")
        return Response(
            {
                "results": [
                    message_representation(
                        m, deliveries=deliveries.get(m.id, []), files=files.get(m.id, NO_FILES)
                    )
                    for m in page.items
                ],
                "next": next_link,
            }
        )


def policy_representation(policy: FollowUpPolicy, *, now: datetime) -> dict[str, Any]:
    preview = policy_preview(policy, now=now)
    return {
        **policy_fields(policy),
        "preview": {
            "sent_at": iso_utc(preview.sent_at),
            "reply_due_at": iso_utc(preview.reply_due_at),
            "text": preview.text,
        },
        # Set only when a stored policy cannot be met (written around the validation): no
        # clock runs until a valid policy is saved.
        "problem": preview.problem,
    }


_POLICY_SCHEMA = inline_serializer(
    "FollowUpPolicy",
    {
        "reply_window_hours": serializers.FloatField(),
        "response_window_hours": serializers.FloatField(),
        "timezone": serializers.CharField(),
        "business_hours": serializers.DictField(
            child=serializers.ListField(child=serializers.CharField(), allow_null=True)
        ),
        "holidays": serializers.CharField(allow_null=True),
        "preview": serializers.DictField(read_only=True),
        "problem": serializers.CharField(read_only=True, allow_null=True),
    },
)


class FollowUpSettingsApi(ApiView):
    required_permissions = {
        "GET": FollowupPermission.MANAGE_FOLLOWUP_POLICY,
        "PUT": FollowupPermission.MANAGE_FOLLOWUP_POLICY,
    }

    @extend_schema(operation_id="followup_settings_read", responses={200: _POLICY_SCHEMA})
    def get(self, request: StaffApiRequest) -> Response:
        check_can_manage_policy(request.user)
        return Response(policy_representation(policy_get(), now=timezone.now()))

    @extend_schema(
        operation_id="followup_settings_update",
        request=_POLICY_SCHEMA,
        responses={
            200: _POLICY_SCHEMA,
            403: OpenApiResponse(description="Administrators only"),
            422: OpenApiResponse(description="A field is invalid; `errors` names it"),
        },
    )
    def put(self, request: StaffApiRequest) -> Response:
        check_can_manage_policy(request.user)
        if not isinstance(request.data, dict):
            raise ValidationFailed(
                "Send the policy as a JSON object.", errors={"body": ["A JSON object."]}
            )
        policy = policy_update(user=request.user, data=request.data)
        return Response(policy_representation(policy, now=timezone.now()))
