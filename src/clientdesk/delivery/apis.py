"""Integration settings API: the outgoing-message endpoint."""

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from clientdesk.accounts.requests import StaffApiRequest
from clientdesk.core.api import ApiView
from clientdesk.core.errors import NotFound
from clientdesk.core.time import iso_utc
from clientdesk.delivery.models import OutgoingEndpoint
from clientdesk.delivery.permissions import DeliveryPermission
from clientdesk.delivery.selectors import endpoint_get
from clientdesk.delivery.services.endpoints import (
    endpoint_configure,
    endpoint_rotate_secret,
    endpoint_send_test,
)


def endpoint_representation(endpoint: OutgoingEndpoint, *, show_secret: bool) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "url": endpoint.url,
        "enabled": endpoint.enabled,
        "email_enabled": endpoint.email_enabled,
        "disabled_reason": endpoint.disabled_reason or None,
        "secret_hint": endpoint.secret[:10] + "…",
        "previous_secret_valid_until": (
            iso_utc(endpoint.previous_secret_expires_at) if endpoint.previous_secret else None
        ),
        "updated_at": iso_utc(endpoint.updated_at),
    }
    if show_secret:
        shape["secret"] = endpoint.secret
    return shape


_ENDPOINT = inline_serializer(
    "OutgoingEndpoint",
    {
        "url": serializers.URLField(),
        "enabled": serializers.BooleanField(),
        "email_enabled": serializers.BooleanField(),
        "disabled_reason": serializers.CharField(allow_null=True),
        "secret_hint": serializers.CharField(),
        "secret": serializers.CharField(required=False),
        "previous_secret_valid_until": serializers.DateTimeField(allow_null=True),
        "updated_at": serializers.DateTimeField(),
    },
)


class OutgoingEndpointApi(ApiView):
    required_permissions = {
        "GET": DeliveryPermission.MANAGE_INTEGRATION,
        "PUT": DeliveryPermission.MANAGE_INTEGRATION,
    }

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "OutgoingEndpointInput"

        url = serializers.CharField(max_length=2000)
        enabled = serializers.BooleanField(default=True)
        email_enabled = serializers.BooleanField(required=False)

    @extend_schema(operation_id="integration_endpoint_read", responses={200: _ENDPOINT})
    def get(self, request: StaffApiRequest) -> Response:
        endpoint = endpoint_get()
        if endpoint is None:
            raise NotFound("No outgoing endpoint is configured yet; PUT one.")
        return Response(endpoint_representation(endpoint, show_secret=False))

    @extend_schema(
        operation_id="integration_endpoint_put",
        request=InputSerializer,
        responses={200: _ENDPOINT, 201: _ENDPOINT},
    )
    def put(self, request: StaffApiRequest) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint, created = endpoint_configure(user=request.user, **data.validated_data)
        return Response(
            endpoint_representation(endpoint, show_secret=True),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class RotateSecretApi(ApiView):
    required_permissions = {"POST": DeliveryPermission.MANAGE_INTEGRATION}

    @extend_schema(
        operation_id="integration_endpoint_rotate", request=None, responses={200: _ENDPOINT}
    )
    def post(self, request: StaffApiRequest) -> Response:
        endpoint = endpoint_rotate_secret(user=request.user)
        return Response(endpoint_representation(endpoint, show_secret=True))


class SendTestEventApi(ApiView):
    required_permissions = {"POST": DeliveryPermission.MANAGE_INTEGRATION}

    @extend_schema(
        operation_id="integration_endpoint_test",
        request=None,
        responses={
            200: inline_serializer(
                "TestEventResult",
                {
                    "ok": serializers.BooleanField(),
                    "status_code": serializers.IntegerField(allow_null=True),
                    "duration_ms": serializers.IntegerField(),
                    "response_excerpt": serializers.CharField(),
                    "error": serializers.CharField(),
                },
            )
        },
    )
    def post(self, request: StaffApiRequest) -> Response:
        outcome = endpoint_send_test(user=request.user)
        return Response(
            {
                "ok": outcome.ok,
                "status_code": outcome.status_code,
                "duration_ms": outcome.duration_ms,
                "response_excerpt": outcome.excerpt,
                "error": outcome.error,
            }
        )
