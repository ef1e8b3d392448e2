"""Staff API of the audit ledger: records, the signed checkpoint, the public key and RFC 9162
proofs, for an auditor's own tools (docs/AUDIT.md)."""

import base64
from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from clientdesk.accounts.requests import StaffApiRequest
from clientdesk.audit import merkle, signing
from clientdesk.audit.models import AuditRecord
from clientdesk.audit.permissions import AuditPermission
from clientdesk.audit.selectors import (
    audit_consistency_proof,
    audit_inclusion_proof,
    audit_records,
    check_can_view_ledger,
    latest_checkpoint,
    ledger_size,
)
from clientdesk.core.api import ApiView, WholeNumberField
from clientdesk.core.errors import NotFound, ValidationFailed
from clientdesk.core.time import iso_utc

_MAX = 2**62


def _b64(values: list[bytes]) -> list[str]:
    return [base64.b64encode(v).decode() for v in values]


class RecordOutput(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()
    created_at = serializers.SerializerMethodField()

    class Meta:
        model = AuditRecord
        fields = [
            "sequence",
            "created_at",
            "actor",
            "action",
            "object_type",
            "object_id",
            "data",
            "prev_hash",
            "hash",
        ]

    def get_actor(self, record: AuditRecord) -> dict[str, str | None]:
        return {
            "type": record.actor_type,
            "id": record.actor_id or None,
            "name": record.actor_label,
        }

    def get_created_at(self, record: AuditRecord) -> str:
        return iso_utc(record.created_at)


class RecordsQuery(serializers.Serializer):
    after = WholeNumberField(min_value=0, max_value=_MAX, default=0)
    limit = WholeNumberField(min_value=1, max_value=1000, default=100)


class RecordsPage(serializers.Serializer):
    results = RecordOutput(many=True)
    next = serializers.URLField(allow_null=True)


class AuditRecordsApi(ApiView):
    required_permissions = {"GET": AuditPermission.VIEW_AUDIT_RECORD}
    query_parameters = {"GET": RecordsQuery}

    @extend_schema(
        operation_id="audit_records_list",
        parameters=[RecordsQuery],
        responses={200: RecordsPage},
    )
    def get(self, request: StaffApiRequest) -> Response:
        check_can_view_ledger(request.user)
        query = RecordsQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        limit = query.validated_data["limit"]
        records = list(audit_records(after=query.validated_data["after"], limit=limit))
        next_url = None
        if len(records) == limit:
            params = request.GET.copy()
            params["after"] = str(records[-1].sequence)
            next_url = request.build_absolute_uri(f"{request.path}?{params.urlencode()}")
        return Response({"results": RecordOutput(records, many=True).data, "next": next_url})


class AuditCheckpointApi(ApiView):
    required_permissions = {"GET": AuditPermission.VIEW_AUDIT_RECORD}

    @extend_schema(
        operation_id="audit_checkpoint",
        responses={
            (200, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="C2SP signed note")
        },
    )
    def get(self, request: StaffApiRequest) -> HttpResponse:
        check_can_view_ledger(request.user)
        checkpoint = latest_checkpoint()
        if checkpoint is None:
            raise NotFound(
                "No checkpoint has been signed yet (the worker signs one when the ledger grows)."
            )
        return HttpResponse(checkpoint.note, content_type="text/plain; charset=utf-8")


class PublicKeyOutput(serializers.Serializer):
    name = serializers.CharField()
    public_key = serializers.CharField()
    vkey = serializers.CharField()


class AuditPublicKeyApi(ApiView):
    required_permissions = {"GET": AuditPermission.VIEW_AUDIT_RECORD}

    @extend_schema(operation_id="audit_public_key", responses={200: PublicKeyOutput})
    def get(self, request: StaffApiRequest) -> Response:
        check_can_view_ledger(request.user)
        verifier = signing.current_verifier()
        return Response(
            {
                "name": verifier.name,
                "public_key": base64.b64encode(verifier.public_key).decode(),
                "vkey": verifier.vkey,
            }
        )


def _default_size() -> int:
    """Proofs default to the latest signed tree, whose root an auditor can check."""
    checkpoint = latest_checkpoint()
    return checkpoint.tree_size if checkpoint else ledger_size()


class ProofQuery(serializers.Serializer):
    tree_size = WholeNumberField(min_value=1, max_value=_MAX, required=False)


class InclusionOutput(serializers.Serializer):
    leaf_index = serializers.IntegerField()
    tree_size = serializers.IntegerField()
    hashes = serializers.ListField(child=serializers.CharField())


class AuditInclusionProofApi(ApiView):
    required_permissions = {"GET": AuditPermission.VIEW_AUDIT_RECORD}
    query_parameters = {"GET": ProofQuery}

    @extend_schema(
        operation_id="audit_inclusion_proof",
        parameters=[OpenApiParameter("sequence", int, OpenApiParameter.PATH), ProofQuery],
        responses={200: InclusionOutput},
    )
    def get(self, request: StaffApiRequest, sequence: int) -> Response:
        check_can_view_ledger(request.user)
        query = ProofQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        tree_size = query.validated_data.get("tree_size") or _default_size()
        if not 1 <= sequence <= ledger_size():
            raise NotFound(f"No sequenced audit record #{sequence}.")
        if sequence > tree_size:
            raise ValidationFailed(
                f"Record #{sequence} is not in a tree of {tree_size} records.",
                errors={"tree_size": [f"must be at least {sequence}"]},
            )
        try:
            hashes = audit_inclusion_proof(sequence=sequence, tree_size=tree_size)
        except merkle.ProofError as error:
            raise ValidationFailed(str(error), errors={"tree_size": [str(error)]}) from error
        return Response(
            {"leaf_index": sequence - 1, "tree_size": tree_size, "hashes": _b64(hashes)}
        )


class ConsistencyQuery(serializers.Serializer):
    first = WholeNumberField(min_value=0, max_value=_MAX)
    second = WholeNumberField(min_value=0, max_value=_MAX, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        second = attrs.get("second")
        if second is not None and attrs["first"] > second:
            raise serializers.ValidationError({"first": ["must not be larger than second"]})
        return attrs


class ConsistencyOutput(serializers.Serializer):
    first = serializers.IntegerField()
    second = serializers.IntegerField()
    hashes = serializers.ListField(child=serializers.CharField())


class AuditConsistencyProofApi(ApiView):
    required_permissions = {"GET": AuditPermission.VIEW_AUDIT_RECORD}
    query_parameters = {"GET": ConsistencyQuery}

    @extend_schema(
        operation_id="audit_consistency_proof",
        parameters=[ConsistencyQuery],
        responses={200: ConsistencyOutput},
    )
    def get(self, request: StaffApiRequest) -> Response:
        check_can_view_ledger(request.user)
        query = ConsistencyQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        first = query.validated_data["first"]
        second = query.validated_data.get("second")
        if second is None:
            second = _default_size()
        try:
            hashes = audit_consistency_proof(first=first, second=second)
        except merkle.ProofError as error:
            raise ValidationFailed(str(error), errors={"second": [str(error)]}) from error
        return Response({"first": first, "second": second, "hashes": _b64(hashes)})
