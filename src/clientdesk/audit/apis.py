"""Staff API for a client's activity timeline."""

import uuid

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from clientdesk.audit.models import ActivityEvent
from clientdesk.audit.permissions import AuditPermission
from clientdesk.audit.selectors import client_activity
from clientdesk.clients.selectors import client_get
from clientdesk.core.api import ApiView, PageQuerySerializer, page_links
from clientdesk.core.pagination import paginate


class ActivityOutput(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()

    class Meta:
        model = ActivityEvent
        fields = ["id", "type", "actor", "subject_id", "created_at", "data"]

    def get_actor(self, event: ActivityEvent) -> dict[str, str | None]:
        return {
            "type": event.actor_type,
            "id": str(event.actor_user_id) if event.actor_user_id else None,
            "name": event.actor_label,
        }


class ClientActivityApi(ApiView):
    required_permissions = {"GET": AuditPermission.VIEW_ACTIVITY}
    query_parameters = {"GET": PageQuerySerializer}

    @extend_schema(
        operation_id="client_activity_list",
        parameters=[PageQuerySerializer],
        responses={
            200: inline_serializer(
                "ActivityPage",
                {
                    "page": serializers.IntegerField(),
                    "next": serializers.URLField(allow_null=True),
                    "previous": serializers.URLField(allow_null=True),
                    "results": ActivityOutput(many=True),
                },
            )
        },
    )
    def get(self, request: Request, client_id: uuid.UUID) -> Response:
        query = PageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = paginate(
            client_activity(client=client_get(client_id=client_id)).select_related("actor_user"),
            page=query.validated_data["page"],
            size=query.validated_data["page_size"],
        )
        return Response(
            {**page_links(request, page), "results": ActivityOutput(page.items, many=True).data}
        )
