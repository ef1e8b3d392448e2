"""Web Push under the portal API (docs/PORTAL.md, "Web Push"): the application server key, a
client's devices, and the receipts of the cabinet's service worker. The pushes themselves are
deliveries (`delivery/services/push.py`, `messaging/push.py`)."""

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from clientdesk.core.api import ApiView
from clientdesk.core.gate import CLIENT_SESSION, PUBLIC
from clientdesk.delivery import webpush
from clientdesk.delivery.services.push import (
    push_device_representation,
    push_devices,
    push_receipt_record,
    push_subscribe,
    push_unsubscribe,
)
from clientdesk.delivery.ssrf import MAX_URL_LENGTH
from clientdesk.portal.apis import PortalApiView


class PushKeys(serializers.Serializer):
    # Base64url of 65 and 16 bytes: 87 and 22 characters (with padding 88 and 24).
    p256dh = serializers.CharField(max_length=100, trim_whitespace=False)
    auth = serializers.CharField(max_length=40, trim_whitespace=False)


class PushSubscriptionJson(serializers.Serializer):
    """What `PushSubscription.toJSON()` gives; other members are ignored."""

    endpoint = serializers.CharField(max_length=MAX_URL_LENGTH, trim_whitespace=False)
    keys = PushKeys()
    expirationTime = serializers.JSONField(required=False, allow_null=True)


class PushEndpoint(serializers.Serializer):
    endpoint = serializers.CharField(max_length=MAX_URL_LENGTH, trim_whitespace=False)


class PushReceipt(serializers.Serializer):
    message_id = serializers.UUIDField()
    receipt = serializers.CharField(max_length=200)


_DEVICE = inline_serializer(
    "PortalPushDevice",
    {
        "id": serializers.UUIDField(),
        "endpoint": serializers.URLField(max_length=MAX_URL_LENGTH),
        "created_at": serializers.DateTimeField(),
        "expiration_time": serializers.DateTimeField(allow_null=True),
        "user_agent": serializers.CharField(),
        "last_receipt_at": serializers.DateTimeField(allow_null=True),
        "unconfirmed_pushes": serializers.IntegerField(),
        "probably_dead": serializers.BooleanField(),
    },
)


class PushKeyApi(ApiView):
    """The VAPID public key browsers subscribe with (`applicationServerKey`). Public: it is the
    key every push carries in its `Authorization` header anyway."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    required_permissions = {"GET": PUBLIC}

    @extend_schema(
        responses={
            200: inline_serializer("PortalPushKey", {"public_key": serializers.CharField()})
        },
        operation_id="portal_push_key",
    )
    def get(self, request: Request) -> Response:
        return Response({"public_key": webpush.vapid_public_key()})


class PushSubscriptionsApi(PortalApiView):
    """The signed-in client's devices: list, subscribe one (the browser's
    `PushSubscription.toJSON()`), unsubscribe one by its endpoint."""

    required_permissions = {"GET": CLIENT_SESSION, "POST": CLIENT_SESSION, "DELETE": CLIENT_SESSION}

    @extend_schema(
        responses={
            200: inline_serializer(
                "PortalPushDevices",
                {
                    "items": serializers.ListField(child=_DEVICE),
                    "dead_after": serializers.IntegerField(),
                },
            )
        },
        operation_id="portal_push_subscriptions_list",
    )
    def get(self, request: Request) -> Response:
        devices = push_devices(client=self.portal_client(request).client)
        return Response(
            {
                "items": [push_device_representation(d) for d in devices],
                "dead_after": settings.PUSH_DEAD_AFTER,
            }
        )

    @extend_schema(
        request=PushSubscriptionJson,
        responses={200: _DEVICE, 201: _DEVICE},
        operation_id="portal_push_subscribe",
    )
    def post(self, request: Request) -> Response:
        data = PushSubscriptionJson(data=request.data)
        data.is_valid(raise_exception=True)
        subscribed = push_subscribe(
            client=self.portal_client(request).client,
            endpoint=data.validated_data["endpoint"],
            p256dh=data.validated_data["keys"]["p256dh"],
            auth=data.validated_data["keys"]["auth"],
            expiration_time=data.validated_data.get("expirationTime"),
            user_agent=request.headers.get("User-Agent", ""),
        )
        return Response(
            push_device_representation(subscribed.subscription),
            status=status.HTTP_201_CREATED if subscribed.created else status.HTTP_200_OK,
        )

    @extend_schema(
        request=PushEndpoint, responses={204: None}, operation_id="portal_push_unsubscribe"
    )
    def delete(self, request: Request) -> Response:
        data = PushEndpoint(data=request.data)
        data.is_valid(raise_exception=True)
        push_unsubscribe(
            client=self.portal_client(request).client, endpoint=data.validated_data["endpoint"]
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class PushReceiptsApi(ApiView):
    """The service worker showed a push. It has no session (a push comes long after one ended):
    the push carries a signed `receipt`, which is the credential."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    required_permissions = {"POST": PUBLIC}

    @extend_schema(request=PushReceipt, responses={204: None}, operation_id="portal_push_receipt")
    def post(self, request: Request) -> Response:
        data = PushReceipt(data=request.data)
        data.is_valid(raise_exception=True)
        push_receipt_record(
            receipt=data.validated_data["receipt"], message_id=data.validated_data["message_id"]
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
