"""Staff API for clients: create, search, read, change (and deactivate), import from CSV."""

import io
import uuid
from typing import Any

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response

from clientdesk.accounts.requests import StaffApiRequest
from clientdesk.clients.importing import clients_import
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
from clientdesk.core.bounded import BIGINT_MAX, Refused, parse_whole
from clientdesk.core.errors import ValidationFailed
from clientdesk.core.zones import zone_name_validate


def _django_validator(func: Any) -> Any:
    """Run a Django validator and report its message as a DRF validation error."""
    from django.core.exceptions import ValidationError as DjangoValidationError

    def run(value: Any) -> None:
        try:
            func(value)
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.messages) from error

    return run


class StrictBooleanField(serializers.BooleanField):
    """JSON true or false only: "no", 0 or "false" are mistakes to report, not to guess."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            raise serializers.ValidationError("Must be true or false.")
        return data


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
            "timezone",
            "outreach_opt_out",
            "outreach_opt_out_at",
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
        timezone = serializers.CharField(
            max_length=64,
            required=False,
            allow_blank=True,
            default="",
            validators=[_django_validator(zone_name_validate)],
            help_text="IANA name, e.g. Europe/Berlin; empty: the outreach default zone",
        )
        outreach_opt_out = StrictBooleanField(
            required=False,
            default=False,
            help_text="true records that the client asked in writing not to receive outreach "
            "(a client.consent_changed ledger record; needs Can change client)",
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
            client = client_create(actor=request.user, via="api", **data.validated_data)
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
                via="api",
            )
        except ClientExists as error:
            _point_to_existing(request, error)
            raise
        return Response(ClientOutput(client).data)


class ImportQuerySerializer(serializers.Serializer):
    dry_run = serializers.BooleanField(
        required=False,
        default=False,
        help_text="true: check every row and count what would change, write nothing, and "
        "show the first rows as they would be written (`preview`)",
    )


_IMPORT_REPORT = inline_serializer(
    "ClientImportReport",
    {
        "created": serializers.IntegerField(),
        "updated": serializers.IntegerField(),
        "unchanged": serializers.IntegerField(),
        "errors": inline_serializer(
            "ClientImportError",
            {
                "line": serializers.IntegerField(
                    help_text="where the row starts; the header is line 1"
                ),
                "errors": serializers.DictField(
                    child=serializers.ListField(child=serializers.CharField()),
                    help_text="column (or non_field_errors) → messages",
                ),
            },
            many=True,
        ),
        "error_rows": serializers.IntegerField(help_text="all rows with errors"),
        "errors_truncated": serializers.BooleanField(
            help_text="true when more rows had errors than `errors` lists (1,000)"
        ),
        "rows": serializers.IntegerField(help_text="rows read, the header not counted"),
        "sha256": serializers.CharField(help_text="of the exact bytes read"),
        "dry_run": serializers.BooleanField(),
        "preview": serializers.ListField(
            child=serializers.DictField(),
            required=False,
            help_text="dry run only: the first 10 rows as they would be written",
        ),
    },
)


class ClientImportApi(ApiView):
    """`POST /api/v1/clients/import`: the CSV body, read as a stream (never held whole)."""

    required_permissions = {"POST": ClientsPermission.ADD_CLIENT}
    query_parameters = {"POST": ImportQuerySerializer}
    # The body is the file: no parser reads it (the view reads `request.stream`), and the
    # size limit is the import's own (core/problems.py body_limit).
    parser_classes = ()
    max_body_bytes = settings.CLIENTS_IMPORT_MAX_BYTES

    @extend_schema(
        operation_id="clients_import",
        parameters=[ImportQuerySerializer],
        request={"text/csv": {"type": "string", "format": "binary"}},
        responses={
            200: _IMPORT_REPORT,
            413: OpenApiResponse(description="over CLIENTDESK_IMPORT_MAX_MB"),
            415: OpenApiResponse(description="not text/csv in UTF-8"),
            422: OpenApiResponse(description="the file cannot be used (header, encoding)"),
        },
    )
    def post(self, request: StaffApiRequest) -> Response:
        """Create or update clients by external_id from a CSV file; errors per line."""
        query = ImportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        media = request.content_type.split(";")[0].strip().lower()
        charset = request.content_type.lower().partition("charset=")[2].split(";")[0].strip()
        if media != "text/csv" or charset.strip('"') not in ("", "utf-8", "utf8"):
            raise exceptions.UnsupportedMediaType(
                request.content_type[:100],
                detail="Send the file as text/csv in UTF-8 (Content-Type: text/csv).",
            )
        try:
            length = parse_whole(
                request.META.get("CONTENT_LENGTH") or "0", minimum=0, maximum=BIGINT_MAX
            )
        except Refused as error:
            raise ValidationFailed(f"Content-Length {error}.") from error
        report = clients_import(
            stream=request.stream or io.BytesIO(),
            actor=request.user,
            via="api",
            dry_run=query.validated_data["dry_run"],
            max_bytes=self.max_body_bytes,
            expected_bytes=length,
        )
        return Response(report.as_dict())
