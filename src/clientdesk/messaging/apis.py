"""Staff API for messages: send to a client, list a client's messages, read one."""

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from clientdesk.clients.selectors import client_get
from clientdesk.core.api import PageQuerySerializer, page_links
from clientdesk.core.errors import ValidationFailed
from clientdesk.core.pagination import paginate
from clientdesk.core.request_meta import RequestMeta
from clientdesk.messaging.representations import message_representation
from clientdesk.messaging.selectors import client_messages, message_get
from clientdesk.messaging.services import message_send

_MESSAGE_SCHEMA = inline_serializer(
    "Message",
    {
        "id": serializers.UUIDField(),
        "client_id": serializers.UUIDField(),
        "direction": serializers.ChoiceField(["out", "in"]),
        "body": serializers.CharField(),
        "source": serializers.CharField(),
        "variables": serializers.DictField(),
        "sender": inline_serializer(
            "Sender",
            {
                "id": serializers.UUIDField(),
                "username": serializers.CharField(),
                "name": serializers.CharField(),
            },
            allow_null=True,
        ),
        "created_at": serializers.DateTimeField(),
        "read_at": serializers.DateTimeField(allow_null=True),
        "deliveries": serializers.ListField(child=serializers.DictField()),
    },
)
_CLIENT_ID = OpenApiParameter("client_id", str, OpenApiParameter.PATH)
_IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=True,
    description=(
        "A fresh UUID per message. A retry with the same key and body returns the first "
        "response; the same key with another body is 422. Keys are kept for 24 hours."
    ),
)


class ClientMessagesApi(APIView):
    class InputSerializer(serializers.Serializer):
        # Length is checked by the service, so the API and the panel say the same thing.
        body = serializers.CharField(trim_whitespace=False)

    @extend_schema(
        operation_id="client_messages_list",
        parameters=[_CLIENT_ID, PageQuerySerializer],
        responses={
            200: inline_serializer(
                "MessagePage",
                {
                    "page": serializers.IntegerField(),
                    "next": serializers.URLField(allow_null=True),
                    "previous": serializers.URLField(allow_null=True),
                    "results": serializers.ListField(child=_MESSAGE_SCHEMA),
                },
            )
        },
    )
    def get(self, request: Request, client_id: str) -> Response:
        query = PageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        client = client_get(client_id=client_id)
        page = paginate(
            client_messages(user=request.user, client=client),  # type: ignore[arg-type]
            page=query.validated_data["page"],
            size=query.validated_data["page_size"],
        )
        return Response(
            {
                **page_links(request, page),
                "results": [message_representation(m) for m in page.items],
            }
        )

    @extend_schema(
        operation_id="client_messages_send",
        parameters=[_CLIENT_ID, _IDEMPOTENCY_KEY],
        request=InputSerializer,
        responses={
            201: _MESSAGE_SCHEMA,
            403: OpenApiResponse(description="No 'Send a private message' permission"),
            409: OpenApiResponse(description="The same key is still being processed"),
            422: OpenApiResponse(description="Invalid input, or variables without a value"),
        },
    )
    def post(self, request: Request, client_id: str) -> Response:
        key = request.headers.get("Idempotency-Key")
        if key is None:
            raise ValidationFailed(
                "The Idempotency-Key header is required: send a fresh UUID per message so "
                "a retry never creates a second one.",
                errors={"Idempotency-Key": ["This header is required."]},
            )
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = message_send(
            sender=request.user,  # type: ignore[arg-type]
            client_id=client_id,
            body=data.validated_data["body"],
            idempotency_key=key,
            meta=RequestMeta.from_request(request),  # type: ignore[arg-type]
        )
        response = Response(result.response, status=status.HTTP_201_CREATED)
        if result.replayed:
            response["Idempotent-Replayed"] = "true"
        return response


class MessageDetailApi(APIView):
    @extend_schema(
        operation_id="messages_read",
        parameters=[OpenApiParameter("message_id", str, OpenApiParameter.PATH)],
        responses={200: _MESSAGE_SCHEMA},
    )
    def get(self, request: Request, message_id: str) -> Response:
        message = message_get(user=request.user, message_id=message_id)  # type: ignore[arg-type]
        return Response(message_representation(message))
