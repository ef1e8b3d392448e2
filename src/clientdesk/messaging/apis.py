"""Staff API for messages: send to a client, list a client's messages, read one."""

import uuid

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.response import Response

from clientdesk.accounts.requests import StaffApiRequest
from clientdesk.clients.selectors import client_get
from clientdesk.core.api import ApiView, InstantField, PageQuerySerializer, page_links
from clientdesk.core.errors import ValidationFailed
from clientdesk.core.pagination import paginate
from clientdesk.core.request_meta import RequestMeta
from clientdesk.delivery.models import Delivery
from clientdesk.messaging.permissions import READ_TEMPLATES, MessagingPermission
from clientdesk.messaging.representations import message_representation, template_representation
from clientdesk.messaging.selectors import (
    NO_FILES,
    client_messages,
    deliveries_by_message,
    files_by_message,
    message_get,
    template_current_version,
    template_get_readable,
    templates_readable,
    templates_with_current_versions,
)
from clientdesk.messaging.services.sending import message_preview, message_send
from clientdesk.messaging.services.templates import (
    RemoveVariant,
    Rename,
    SetActive,
    SetDefaultLanguage,
    SetDocumentRequests,
    SetExpectsReply,
    SetVariant,
    TemplateAction,
    template_change,
    template_create,
)

ATTACHMENT_SCHEMA = inline_serializer(
    "Attachment",
    {
        "id": serializers.UUIDField(),
        "name": serializers.CharField(),
        "size": serializers.IntegerField(),
        "content_type": serializers.CharField(),
        "sha256": serializers.CharField(),
    },
)
DOCUMENT_REQUEST_SCHEMA = inline_serializer(
    "DocumentRequest",
    {
        "id": serializers.UUIDField(),
        "label": serializers.CharField(),
        "status": serializers.ChoiceField(["open", "received"]),
        "file": type(ATTACHMENT_SCHEMA)(allow_null=True),
    },
)
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
        "template": inline_serializer(
            "MessageTemplateRef",
            {
                "id": serializers.UUIDField(),
                "version": serializers.IntegerField(),
                "language": serializers.CharField(),
                "edited": serializers.BooleanField(),
            },
            allow_null=True,
        ),
        "read_at": serializers.DateTimeField(allow_null=True),
        "expects_reply": serializers.BooleanField(),
        "reply_state": serializers.ChoiceField(["none", "awaiting", "overdue", "answered"]),
        "reply_due_at": serializers.DateTimeField(allow_null=True),
        "answered_at": serializers.DateTimeField(allow_null=True),
        "category": serializers.ChoiceField(["service", "outreach"]),
        "broadcast_id": serializers.UUIDField(allow_null=True),
        "attachments": serializers.ListField(child=ATTACHMENT_SCHEMA),
        "document_requests": serializers.ListField(child=DOCUMENT_REQUEST_SCHEMA),
        "channels": serializers.ListField(
            child=inline_serializer(
                "MessageChannel",
                {
                    "channel": serializers.ChoiceField(["cabinet", "webhook", "email", "push"]),
                    "status": serializers.CharField(),
                    "delivery_id": serializers.UUIDField(required=False),
                },
            ),
            help_text=(
                "Where the message went: the client's cabinet (`available`, `read`, "
                "`client_deactivated`, or `from_client` for the client's own message), then each "
                "delivery with its status (`pending`, `sending`, `delivered`, `failed`)."
            ),
        ),
        "deliveries": serializers.ListField(child=serializers.DictField()),
    },
)
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


class ComposeInput(serializers.Serializer):
    """A message body, a template, or both: the template's text as the sender edited it (checked
    as any typed text is), for sending and for previews."""

    # Length and blankness are checked by the service, so the API and the panel agree.
    body = serializers.CharField(trim_whitespace=False, allow_blank=True, required=False)
    template_id = serializers.UUIDField(required=False)

    def validate(self, attrs: dict[str, object]) -> dict[str, object]:
        if "body" not in attrs and "template_id" not in attrs:
            raise serializers.ValidationError(
                {"body": ["Give body, template_id, or both (the template's text edited)."]}
            )
        return attrs


class DocumentRequestInput(serializers.Serializer):
    # A declared field named like Field.label: the metaclass takes it off the class.
    label = serializers.CharField(max_length=200)  # type: ignore[assignment]


class SendInput(ComposeInput):
    # Left out: true with document requests, else the template's default (template_id), else
    # false.
    expects_reply = serializers.BooleanField(required=False, allow_null=True, default=None)
    # The service checks it (future, within a year, needs expects_reply) so the panel agrees.
    reply_due_at = InstantField(required=False, allow_null=True, default=None)
    # Ids of the sender's own uploads (POST /api/v1/files), at most 5, in this order.
    attachments = serializers.ListField(
        child=serializers.UUIDField(), required=False, allow_null=True, default=None
    )
    # At most 10; left out, a template's own requests.
    document_requests = DocumentRequestInput(
        many=True, required=False, allow_null=True, default=None
    )


class ClientMessagesApi(ApiView):
    required_permissions = {
        "GET": MessagingPermission.VIEW_MESSAGE,
        "POST": MessagingPermission.SEND_PRIVATE_MESSAGE,
    }
    query_parameters = {"GET": PageQuerySerializer}

    InputSerializer = SendInput

    @extend_schema(
        operation_id="client_messages_list",
        parameters=[PageQuerySerializer],
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
    def get(self, request: StaffApiRequest, client_id: uuid.UUID) -> Response:
        query = PageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        client = client_get(client_id=client_id)
        page = paginate(
            client_messages(user=request.user, client=client),
            page=query.validated_data["page"],
            size=query.validated_data["page_size"],
        )
        deliveries = deliveries_by_message(m.id for m in page.items)
        files = files_by_message(m.id for m in page.items)
        return Response(
            {
                **page_links(request, page),
                "results": [
                    message_representation(
                        m, deliveries=deliveries.get(m.id, []), files=files.get(m.id, NO_FILES)
                    )
                    for m in page.items
                ],
            }
        )

    @extend_schema(
        operation_id="client_messages_send",
        parameters=[_IDEMPOTENCY_KEY],
        request=InputSerializer,
        responses={
            201: _MESSAGE_SCHEMA,
            403: OpenApiResponse(description="No 'Send a private message' permission"),
            409: OpenApiResponse(description="The same key is still being processed"),
            422: OpenApiResponse(description="Invalid input, or variables without a value"),
        },
    )
    def post(self, request: StaffApiRequest, client_id: uuid.UUID) -> Response:
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
            sender=request.user,
            client_id=client_id,
            body=data.validated_data.get("body"),
            template_id=data.validated_data.get("template_id"),
            expects_reply=data.validated_data["expects_reply"],
            reply_due_at=data.validated_data["reply_due_at"],
            attachments=data.validated_data["attachments"],
            document_requests=data.validated_data["document_requests"],
            idempotency_key=key,
            meta=RequestMeta.from_request(request),
        )
        response = Response(result.response, status=status.HTTP_201_CREATED)
        if result.replayed:
            response["Idempotent-Replayed"] = "true"
        return response


class MessageDetailApi(ApiView):
    required_permissions = {"GET": MessagingPermission.VIEW_MESSAGE}

    @extend_schema(
        operation_id="messages_read",
        responses={200: _MESSAGE_SCHEMA},
    )
    def get(self, request: StaffApiRequest, message_id: uuid.UUID) -> Response:
        message = message_get(user=request.user, message_id=message_id)
        deliveries = list(
            Delivery.objects.filter(subject_id=message.id).prefetch_related("attempts")
        )
        return Response(message_representation(message, deliveries=deliveries, with_attempts=True))


class MessagePreviewApi(ApiView):
    required_permissions = {
        "POST": (MessagingPermission.SEND_PRIVATE_MESSAGE, MessagingPermission.MANAGE_TEMPLATES)
    }

    @extend_schema(
        operation_id="client_messages_preview",
        request=ComposeInput,
        responses={
            200: inline_serializer(
                "Preview",
                {
                    "body": serializers.CharField(),
                    "variables": serializers.DictField(),
                    "template": serializers.DictField(allow_null=True),
                },
            ),
            422: OpenApiResponse(description="Invalid input, or variables without a value"),
        },
    )
    def post(self, request: StaffApiRequest, client_id: uuid.UUID) -> Response:
        data = ComposeInput(data=request.data)
        data.is_valid(raise_exception=True)
        composed = message_preview(
            user=request.user,
            client_id=client_id,
            body=data.validated_data.get("body"),
            template_id=data.validated_data.get("template_id"),
        )
        version = composed.template_version
        return Response(
            {
                "body": composed.rendered.body,
                "variables": composed.rendered.variables,
                "template": (
                    {
                        "id": str(version.template_id),
                        "version": version.version,
                        "language": composed.template_language,
                        "edited": composed.template_edited,
                    }
                    if version
                    else None
                ),
            }
        )


_TEMPLATE_SCHEMA = inline_serializer(
    "MessageTemplate",
    {
        "id": serializers.UUIDField(),
        "name": serializers.CharField(),
        "is_active": serializers.BooleanField(),
        "expects_reply": serializers.BooleanField(),
        "version": serializers.IntegerField(),
        "default_language": serializers.CharField(),
        "body": serializers.CharField(),
        "variants": serializers.DictField(child=serializers.CharField()),
        "document_requests": serializers.ListField(child=serializers.DictField()),
        "created_at": serializers.DateTimeField(),
        "updated_at": serializers.DateTimeField(),
    },
)


class TemplateListCreateApi(ApiView):
    required_permissions = {
        "GET": READ_TEMPLATES,
        "POST": MessagingPermission.MANAGE_TEMPLATES,
    }

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TemplateCreate"

        name = serializers.CharField(max_length=120)
        body = serializers.CharField(trim_whitespace=False, allow_blank=True)
        language = serializers.CharField(max_length=8, default="en")
        expects_reply = serializers.BooleanField(required=False, default=False)
        # Checked by the service (at most 10, each 1-200 characters).
        document_requests = DocumentRequestInput(many=True, required=False, default=list)

    class QuerySerializer(PageQuerySerializer):
        search = serializers.CharField(required=False, allow_blank=True, default="", max_length=120)
        active = serializers.BooleanField(required=False, default=False)

    query_parameters = {"GET": QuerySerializer}

    @extend_schema(
        operation_id="templates_list",
        parameters=[QuerySerializer],
        responses={
            200: inline_serializer(
                "MessageTemplatePage",
                {
                    "page": serializers.IntegerField(),
                    "next": serializers.URLField(allow_null=True),
                    "previous": serializers.URLField(allow_null=True),
                    "results": serializers.ListField(child=_TEMPLATE_SCHEMA),
                },
            )
        },
    )
    def get(self, request: StaffApiRequest) -> Response:
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = paginate(
            templates_readable(
                user=request.user,
                query=query.validated_data["search"],
                with_inactive=not query.validated_data["active"],
            ),
            page=query.validated_data["page"],
            size=query.validated_data["page_size"],
        )
        return Response(
            {
                **page_links(request, page),
                "results": [
                    template_representation(t, v)
                    for t, v in templates_with_current_versions(page.items)
                ],
            }
        )

    @extend_schema(
        operation_id="templates_create", request=InputSerializer, responses={201: _TEMPLATE_SCHEMA}
    )
    def post(self, request: StaffApiRequest) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = template_create(author=request.user, **data.validated_data)
        return Response(
            template_representation(version.template, version), status=status.HTTP_201_CREATED
        )


class TemplateDetailApi(ApiView):
    required_permissions = {
        "GET": READ_TEMPLATES,
        "PATCH": MessagingPermission.MANAGE_TEMPLATES,
    }

    class PatchSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TemplatePatch"

        name = serializers.CharField(max_length=120, required=False)
        is_active = serializers.BooleanField(required=False)
        expects_reply = serializers.BooleanField(required=False)
        body = serializers.CharField(trim_whitespace=False, allow_blank=True, required=False)
        language = serializers.CharField(max_length=8, required=False)
        default_language = serializers.CharField(max_length=8, required=False)
        remove_language = serializers.CharField(max_length=8, required=False)
        document_requests = DocumentRequestInput(many=True, required=False)

    @extend_schema(
        operation_id="templates_read",
        responses={200: _TEMPLATE_SCHEMA},
    )
    def get(self, request: StaffApiRequest, template_id: uuid.UUID) -> Response:
        template = template_get_readable(user=request.user, template_id=template_id)
        return Response(
            template_representation(template, template_current_version(template=template))
        )

    @extend_schema(
        operation_id="templates_update",
        request=PatchSerializer,
        responses={200: _TEMPLATE_SCHEMA},
    )
    def patch(self, request: StaffApiRequest, template_id: uuid.UUID) -> Response:
        data = self.PatchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        if "language" in fields and "body" not in fields:
            raise ValidationFailed(
                "Give the body for that language.", errors={"body": ["Required with language."]}
            )
        # Applied in this order, in one transaction: a PATCH makes at most one version.
        actions: list[TemplateAction] = []
        if "name" in fields:
            actions.append(Rename(fields["name"]))
        if "is_active" in fields:
            actions.append(SetActive(fields["is_active"]))
        if "expects_reply" in fields:
            actions.append(SetExpectsReply(fields["expects_reply"]))
        if "body" in fields:
            actions.append(SetVariant(fields["body"], fields.get("language")))
        if "default_language" in fields:
            actions.append(SetDefaultLanguage(fields["default_language"]))
        if "remove_language" in fields:
            actions.append(RemoveVariant(fields["remove_language"]))
        if "document_requests" in fields:
            actions.append(SetDocumentRequests(fields["document_requests"]))
        version = template_change(
            author=request.user,
            template_id=template_id,
            actions=actions,
        )
        return Response(template_representation(version.template, version))
