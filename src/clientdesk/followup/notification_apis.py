"""Staff API of reply notifications: a user's own, listed with the unread count, and marked read."""

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from clientdesk.accounts.requests import StaffApiRequest
from clientdesk.core.api import ApiView, InstantField, WholeNumberField
from clientdesk.followup.notifications import (
    MAX_IDS,
    notification_representation,
    notifications_list,
    notifications_mark_read,
)
from clientdesk.messaging.permissions import MessagingPermission

_NOTIFICATION = inline_serializer(
    "ReplyNotification",
    {
        "id": serializers.UUIDField(),
        "user_id": serializers.UUIDField(),
        "client_id": serializers.UUIDField(),
        "client_name": serializers.CharField(),
        "message_id": serializers.UUIDField(),
        "in_reply_to": serializers.UUIDField(allow_null=True),
        "excerpt": serializers.CharField(),
        "created_at": serializers.DateTimeField(),
        "read_at": serializers.DateTimeField(allow_null=True),
    },
)


class NotificationListApi(ApiView):
    required_permissions = {"GET": MessagingPermission.VIEW_MESSAGE}

    class NotificationListQuery(serializers.Serializer):
        unread = serializers.BooleanField(required=False, allow_null=True, default=None)
        cursor = serializers.CharField(required=False, max_length=500)
        limit = WholeNumberField(min_value=1, max_value=100, default=20)

    query_parameters = {"GET": NotificationListQuery}

    @extend_schema(
        operation_id="notifications_list",
        parameters=[NotificationListQuery],
        responses={
            200: inline_serializer(
                "ReplyNotificationList",
                {
                    "results": serializers.ListField(child=type(_NOTIFICATION)()),
                    "unread_count": serializers.IntegerField(),
                    "next": serializers.URLField(allow_null=True),
                },
            )
        },
    )
    def get(self, request: StaffApiRequest) -> Response:
        query = self.NotificationListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        page = notifications_list(
            user=request.user, unread=data["unread"], cursor=data.get("cursor"), limit=data["limit"]
        )
        next_link = None
        if page.next_cursor:
            params = request.GET.copy()
            params["cursor"] = page.next_cursor
            next_link = request.build_absolute_uri(f"{request.path}?{params.urlencode()}")
        return Response(
            {
                "results": [notification_representation(n, n.message) for n in page.items],
                "unread_count": page.unread_count,
                "next": next_link,
            }
        )


class NotificationReadApi(ApiView):
    required_permissions = {"POST": MessagingPermission.VIEW_MESSAGE}

    class NotificationsRead(serializers.Serializer):
        ids = serializers.ListField(
            child=serializers.UUIDField(), required=False, min_length=1, max_length=MAX_IDS
        )
        client_id = serializers.UUIDField(required=False)
        until = InstantField(required=False)

    @extend_schema(
        operation_id="notifications_read",
        request=NotificationsRead,
        responses={
            200: inline_serializer(
                "ReplyNotificationsRead",
                {"marked": serializers.IntegerField(), "unread_count": serializers.IntegerField()},
            ),
            404: OpenApiResponse(description="An id that is not one of your notifications"),
            422: OpenApiResponse(description="Not exactly one of ids, client_id, until"),
        },
    )
    def post(self, request: StaffApiRequest) -> Response:
        body = self.NotificationsRead(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        marked = notifications_mark_read(
            user=request.user,
            ids=data.get("ids"),
            client_id=data.get("client_id"),
            until=data.get("until"),
        )
        return Response({"marked": marked.marked, "unread_count": marked.unread_count})
