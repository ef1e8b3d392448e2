"""Staff API for clients: create, search, read, change (and deactivate)."""

import uuid
from typing import Any

from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from clientdesk.accounts.requests import StaffApiRequest
from clientdesk.clients.models import Client
from clientdesk.clients.permissions import ClientsPermission
from clientdesk.clients.selectors import client_get, client_search, client_with_external_id
from clientdesk.clients.services import ClientExists, client_create, client_update
from clientdesk.clients.validators import (
    validate_attributes,
    validate_external_id,
    validate_language,
    validate_phone,
)
from clientdesk.core.api import ApiView, PageQuerySerializer, page_links
from clientdesk.core.errors import ValidationFailed


def _django_validator(func: Any) -> Any:
    """Run a Django validator and report its message as a DRF validation error."""
    from django.core.exceptions import ValidationError as DjangoValidationError

    def run(value: Any) -> None:
        try:
            func(value)
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.messages) from error

    return run


class ClientOutput(serializers.ModelSerializer):
    full_name = serializers.CharField(read_only=True)

    class Meta:
        model = Client
        fields = [
            "id",
            "external_id",
            "first_name",
            "last_name",
            "full_name",
            "email",
            "phone",
            "language",
            "attributes",
            "is_active",
            "deactivated_at",
            "created_at",
            "updated_at",
        ]


class ClientListCreateApi(ApiView):
    required_permissions = {
        "GET": ClientsPermission.VIEW_CLIENT,
        "POST": ClientsPermission.ADD_CLIENT,
    }

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ClientCreate"

        external_id = serializers.CharField(
            max_length=64, validators=[_django_validator(validate_external_id)]
        )
        first_name = serializers.CharField(max_length=100)
        last_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
        email = serializers.EmailField(max_length=254, required=False, allow_blank=True)
        phone = serializers.CharField(
            max_length=32,
            required=False,
            allow_blank=True,
            validators=[_django_validator(validate_phone)],
        )
        language = serializers.CharField(
            max_length=8,
            required=False,
            default="en",
            validators=[_django_validator(validate_language)],
        )
        attributes = serializers.JSONField(
            required=False, default=dict, validators=[_django_validator(validate_attributes)]
        )

    class QuerySerializer(PageQuerySerializer):
        search = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
        external_id = serializers.CharField(
            required=False,
            max_length=64,
            trim_whitespace=False,
            help_text="exactly this external id (the business's own id): at most one result",
        )

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            # A query string's empty value reads as absent to DRF; for an exact lookup that
            # would list every client instead of none.
            if "external_id" in self.initial_data and not attrs.get("external_id"):
                raise serializers.ValidationError({"external_id": ["This field may not be blank."]})
            if "external_id" in attrs and attrs["search"]:
                raise serializers.ValidationError(
                    {"external_id": ["Give search or external_id, not both."]}
                )
            return attrs

    query_parameters = {"GET": QuerySerializer}

    class ListOutput(serializers.Serializer):
        page = serializers.IntegerField()
        next = serializers.URLField(allow_null=True)
        previous = serializers.URLField(allow_null=True)
        results = ClientOutput(many=True)

    @extend_schema(
        operation_id="clients_search",
        parameters=[QuerySerializer],
        responses={200: ListOutput},
    )
    def get(self, request: StaffApiRequest) -> Response:
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        wanted = query.validated_data
        if "external_id" in wanted:
            page = client_with_external_id(
                external_id=wanted["external_id"], page=wanted["page"], size=wanted["page_size"]
            )
        else:
            page = client_search(
                query=wanted["search"], page=wanted["page"], size=wanted["page_size"]
            )
        return Response(
            {**page_links(request, page), "results": ClientOutput(page.items, many=True).data}
        )

    @extend_schema(
        operation_id="clients_create",
        request=InputSerializer,
        responses={
            201: ClientOutput,
            409: OpenApiResponse(
                description="A client with this external_id exists; `existing_id` and "
                "`existing_url` name it (for those who may view clients)"
            ),
        },
    )
    def post(self, request: StaffApiRequest) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            client = client_create(actor=request.user, **data.validated_data)
        except ClientExists as error:
            _point_to_existing(request, error)
            raise
        return Response(ClientOutput(client).data, status=status.HTTP_201_CREATED)


def _point_to_existing(request: StaffApiRequest, error: ClientExists) -> None:
    """Name the client that holds the external id, so that an integrator can update it instead;
    only to a caller who may view clients (every role that may add one may), since the id is
    what a viewer could look up by `?external_id=` anyway."""
    if error.existing_id is None or not request.user.has_perm(ClientsPermission.VIEW_CLIENT):
        return
    error.extra["existing_id"] = str(error.existing_id)
    error.extra["existing_url"] = request.build_absolute_uri(
        reverse("api-client", args=[error.existing_id])
    )


class StrictBooleanField(serializers.BooleanField):
    """JSON true or false only: "no", 0 or "false" are mistakes to report, not to guess."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            raise serializers.ValidationError("Must be true or false.")
        return data


class ClientDetailApi(ApiView):
    required_permissions = {
        "GET": ClientsPermission.VIEW_CLIENT,
        "PATCH": ClientsPermission.CHANGE_CLIENT,
    }

    class ChangeSerializer(ClientListCreateApi.InputSerializer):
        """The create fields, each optional (used with `partial=True`, which also skips the
        create defaults), and `is_active`."""

        class Meta:
            ref_name = "ClientChange"

        is_active = StrictBooleanField(
            required=False,
            help_text="false deactivates the client: no new messages, portal sessions end",
        )

    @extend_schema(
        operation_id="clients_read",
        responses={200: ClientOutput},
    )
    def get(self, request: StaffApiRequest, client_id: uuid.UUID) -> Response:
        return Response(ClientOutput(client_get(client_id=client_id)).data)

    @extend_schema(
        operation_id="clients_change",
        request=ChangeSerializer,
        responses={200: ClientOutput},
    )
    def patch(self, request: StaffApiRequest, client_id: uuid.UUID) -> Response:
        """Change the given fields; `"is_active": false` deactivates the client."""
        if not isinstance(request.data, dict):
            raise ValidationFailed("The body must be a JSON object of the fields to change.")
        data = self.ChangeSerializer(data=request.data, partial=True)
        unknown = sorted(set(request.data) - set(data.fields))
        if unknown:
            raise ValidationFailed(
                f"These fields cannot be changed: {', '.join(unknown)[:200]}.",
                errors={name[:100]: ["Cannot be changed."] for name in unknown[:20]},
            )
        data.is_valid(raise_exception=True)
        try:
            client = client_update(
                actor=request.user,
                client_id=client_get(client_id=client_id).pk,
                changes=data.validated_data,
            )
        except ClientExists as error:
            _point_to_existing(request, error)
            raise
        return Response(ClientOutput(client).data)
