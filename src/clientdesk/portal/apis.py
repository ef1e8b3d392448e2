"""The portal API (`/portal/api/v1/`, a client's session token) and the staff endpoint that mints
sessions (`POST /api/v1/portal/sessions`, the business's portal backend)."""

import time
import uuid
from typing import Any

from django.conf import settings
from django.utils import translation
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from clientdesk.accounts.models import ApiToken, User
from clientdesk.accounts.services import token_digest
from clientdesk.clients.consent import client_consent_change
from clientdesk.core.api import ApiView, WholeNumberField
from clientdesk.core.bearer import bearer_token
from clientdesk.core.gate import CLIENT_SESSION, PUBLIC
from clientdesk.core.languages import supported_language
from clientdesk.core.problems import PROBLEM_CONTENT_TYPE, problem_body
from clientdesk.core.request_meta import RequestMeta
from clientdesk.core.time import iso_utc
from clientdesk.core.zones import zone_or_none
from clientdesk.messaging.apis import ATTACHMENT_SCHEMA, DOCUMENT_REQUEST_SCHEMA
from clientdesk.messaging.representations import message_client_representation
from clientdesk.messaging.selectors import NO_FILES, files_by_message
from clientdesk.outreach.selectors import outreach_settings_get
from clientdesk.portal.authentication import (
    IsPortalClient,
    PortalClient,
    PortalTokenAuthentication,
)
from clientdesk.portal.permissions import PortalPermission
from clientdesk.portal.selectors import portal_inbox
from clientdesk.portal.services import (
    TooManyRequests,
    portal_link_redeem,
    portal_link_request,
    portal_message_read,
    portal_reply_create,
    portal_session_end,
    portal_session_issue,
    portal_session_refresh,
)

_SESSION = inline_serializer(
    "PortalSession",
    {
        "token": serializers.CharField(),
        "expires_at": serializers.DateTimeField(),
        "client_id": serializers.UUIDField(),
    },
)
_PORTAL_MESSAGE = inline_serializer(
    "PortalMessage",
    {
        "id": serializers.UUIDField(),
        "direction": serializers.ChoiceField(["out", "in"]),
        "body": serializers.CharField(),
        "created_at": serializers.DateTimeField(),
        "sender": inline_serializer(
            "PortalSender", {"name": serializers.CharField()}, allow_null=True
        ),
        "read_at": serializers.DateTimeField(allow_null=True),
        "in_reply_to": serializers.UUIDField(allow_null=True),
        "attachments": serializers.ListField(child=type(ATTACHMENT_SCHEMA)()),
        "document_requests": serializers.ListField(child=type(DOCUMENT_REQUEST_SCHEMA)()),
    },
)
_PREFERENCES = inline_serializer(
    "PortalPreferences",
    {
        "outreach_opt_out": serializers.BooleanField(),
        "outreach_opt_out_at": serializers.DateTimeField(allow_null=True),
    },
)


class PortalSessionsApi(ApiView):
    """Staff token with *Issue client portal sessions* → a token for one client."""

    required_permissions = {"POST": PortalPermission.ISSUE_SESSION}

    class PortalSessionRequest(serializers.Serializer):
        client_id = serializers.UUIDField(required=False)
        external_id = serializers.CharField(required=False, max_length=64)

    @extend_schema(
        request=PortalSessionRequest, responses={201: _SESSION}, operation_id="portal_session_issue"
    )
    def post(self, request: Request) -> Response:
        data = self.PortalSessionRequest(data=request.data)
        data.is_valid(raise_exception=True)
        header = request.headers.get("Authorization", "")
        token = bearer_token(header)
        minting = ApiToken.objects.filter(digest=token_digest(token)).first() if token else None
        assert isinstance(request.user, User)
        issued = portal_session_issue(
            issuer=request.user,
            token=minting,
            client_id=data.validated_data.get("client_id"),
            external_id=data.validated_data.get("external_id"),
        )
        return Response(issued.representation(), status=status.HTTP_201_CREATED)


class PortalApiView(ApiView):
    """A view of the client's own data: answers in the client's language (what Django and DRF
    say, e.g. a field's error), restored after the request."""

    authentication_classes = [PortalTokenAuthentication]
    permission_classes = [IsPortalClient]
    required_permissions = {"GET": CLIENT_SESSION, "POST": CLIENT_SESSION}

    def portal_client(self, request: Request) -> PortalClient:
        assert isinstance(request.user, PortalClient)
        return request.user

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        with translation.override(translation.get_language()):
            return super().dispatch(request, *args, **kwargs)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authenticates: the client is known after
        translation.activate(supported_language(self.portal_client(request).client.language))


class PortalSessionExchangeApi(ApiView):
    """A one-time sign-in code (from `manage.py portal_link`) → a session token."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    required_permissions = {"POST": PUBLIC}  # the sign-in code is the credential

    class PortalSignInCode(serializers.Serializer):
        code = serializers.CharField(max_length=100)

    @extend_schema(
        request=PortalSignInCode, responses={201: _SESSION}, operation_id="portal_session_exchange"
    )
    def post(self, request: Request) -> Response:
        data = self.PortalSignInCode(data=request.data)
        data.is_valid(raise_exception=True)
        issued = portal_link_redeem(code=data.validated_data["code"])
        return Response(issued.representation(), status=status.HTTP_201_CREATED)


def too_many(error: TooManyRequests) -> Response:
    """429 problem+json with `Retry-After`."""
    body = problem_body(
        status_code=error.status, title=error.title, detail=error.detail, type_slug=error.type_slug
    )
    return Response(
        body,
        status=error.status,
        content_type=PROBLEM_CONTENT_TYPE,
        headers={"Retry-After": str(error.retry_after)},
    )


class PortalSessionRefreshApi(PortalApiView):
    """A live session → a new token that lasts `CLIENTDESK_PORTAL_SESSION_MINUTES` more, never
    past `CLIENTDESK_PORTAL_SESSION_MAX_HOURS` from sign-in."""

    required_permissions = {"POST": CLIENT_SESSION}

    @extend_schema(request=None, responses={200: _SESSION}, operation_id="portal_session_refresh")
    def post(self, request: Request) -> Response:
        issued = portal_session_refresh(session=self.portal_client(request).session)
        return Response(issued.representation())


class PortalSessionEndApi(PortalApiView):
    """Sign out: the session and every token of it end; its open streams close."""

    required_permissions = {"POST": CLIENT_SESSION}

    @extend_schema(request=None, responses={204: None}, operation_id="portal_session_end")
    def post(self, request: Request) -> Response:
        portal_session_end(session=self.portal_client(request).session)
        return Response(status=status.HTTP_204_NO_CONTENT)


LINK_REQUESTED = (
    "If this address belongs to an account, a sign-in link is on its way to it. "
    "It works once, within 15 minutes."
)


class PortalLinkRequestApi(ApiView):
    """A signed-out client asks for a sign-in link by e-mail. The answer is the same whether the
    address is known or not, and takes at least as long either way."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    required_permissions = {"POST": PUBLIC}

    class PortalLinkRequest(serializers.Serializer):
        email = serializers.EmailField(max_length=254)

    @extend_schema(
        request=PortalLinkRequest,
        responses={
            202: inline_serializer("PortalLinkRequested", {"detail": serializers.CharField()})
        },
        operation_id="portal_link_request",
    )
    def post(self, request: Request) -> Response:
        started = time.monotonic()
        data = self.PortalLinkRequest(data=request.data)
        data.is_valid(raise_exception=True)
        base = settings.PUBLIC_URL or request.build_absolute_uri("/").rstrip("/")
        try:
            portal_link_request(
                email=data.validated_data["email"],
                remote_address=request.META.get("REMOTE_ADDR", "") or "",
                cabinet_url=f"{base}/portal/",
            )
        except TooManyRequests as error:
            answer = too_many(error)
        else:
            answer = Response({"detail": LINK_REQUESTED}, status=status.HTTP_202_ACCEPTED)
        # Known or not, the answer leaves no sooner than this: its time says nothing either.
        time.sleep(max(0.0, settings.PORTAL_LINK_REQUEST_SECONDS - (time.monotonic() - started)))
        return answer


class PortalMessagesApi(PortalApiView):
    class PortalInboxQuery(serializers.Serializer):
        limit = WholeNumberField(min_value=1, max_value=100, default=20)
        before = serializers.CharField(required=False, max_length=200)

    query_parameters = {"GET": PortalInboxQuery}

    class PortalReply(serializers.Serializer):
        body = serializers.CharField(trim_whitespace=False, allow_blank=True, default="")
        in_reply_to = serializers.UUIDField(required=False, allow_null=True)
        # Ids of the client's own uploads (POST /portal/api/v1/files), at most 5.
        attachments = serializers.ListField(
            child=serializers.UUIDField(), required=False, allow_null=True, default=None
        )
        # {document request id: file id}: the uploads answering requests of our messages.
        fulfils = serializers.DictField(
            child=serializers.UUIDField(), required=False, allow_null=True, default=None
        )

    @extend_schema(
        parameters=[PortalInboxQuery],
        responses={
            200: inline_serializer(
                "PortalInbox",
                {
                    "items": serializers.ListField(child=_PORTAL_MESSAGE),
                    "unread_count": serializers.IntegerField(),
                    "next": serializers.CharField(allow_null=True),
                    "last_event_id": serializers.IntegerField(),
                },
            )
        },
        operation_id="portal_messages_list",
    )
    def get(self, request: Request) -> Response:
        query = self.PortalInboxQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        inbox = portal_inbox(
            client=self.portal_client(request).client,
            limit=query.validated_data["limit"],
            before=query.validated_data.get("before"),
        )
        files = files_by_message(m.id for m in inbox.items)
        return Response(
            {
                "items": [
                    message_client_representation(m, files=files.get(m.id, NO_FILES))
                    for m in inbox.items
                ],
                "unread_count": inbox.unread_count,
                "next": inbox.next,
                "last_event_id": inbox.last_event_id,
            }
        )

    @extend_schema(
        request=PortalReply,
        parameters=[
            OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=True)
        ],
        responses={201: _PORTAL_MESSAGE},
        operation_id="portal_reply_create",
    )
    def post(self, request: Request) -> Response:
        data = self.PortalReply(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            result = portal_reply_create(
                client=self.portal_client(request).client,
                body=data.validated_data["body"],
                in_reply_to=data.validated_data.get("in_reply_to"),
                attachments=data.validated_data["attachments"],
                fulfils=data.validated_data["fulfils"],
                idempotency_key=request.headers.get("Idempotency-Key", ""),
                meta=RequestMeta.from_request(request),
            )
        except TooManyRequests as error:
            return too_many(error)
        return Response(
            message_client_representation(result.message),
            status=status.HTTP_201_CREATED,  # a replay answers as the first request did
        )


class PortalMessageReadApi(PortalApiView):
    @extend_schema(request=None, responses={200: _PORTAL_MESSAGE}, operation_id="portal_read")
    def post(self, request: Request, message_id: uuid.UUID) -> Response:
        message = portal_message_read(
            client=self.portal_client(request).client, message_id=message_id
        )
        return Response(message_client_representation(message))


class StrictBooleanField(serializers.BooleanField):
    """JSON true or false only: not "yes", 1 or "false", which a plain BooleanField reads."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class PortalPreferencesApi(PortalApiView):
    """The client's own notification settings: outreach off or on. Service messages are not a
    preference: they always come."""

    required_permissions = {"GET": CLIENT_SESSION, "PUT": CLIENT_SESSION}

    class PortalPreferencesChange(serializers.Serializer):
        outreach_opt_out = StrictBooleanField()

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            unknown = sorted(set(self.initial_data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
            return attrs

    @staticmethod
    def _representation(client: Any) -> dict[str, Any]:
        return {
            "outreach_opt_out": client.outreach_opt_out,
            "outreach_opt_out_at": iso_utc(client.outreach_opt_out_at),
        }

    @extend_schema(responses={200: _PREFERENCES}, operation_id="portal_preferences_get")
    def get(self, request: Request) -> Response:
        return Response(self._representation(self.portal_client(request).client))

    @extend_schema(
        request=PortalPreferencesChange,
        responses={200: _PREFERENCES},
        operation_id="portal_preferences_set",
    )
    def put(self, request: Request) -> Response:
        data = self.PortalPreferencesChange(data=request.data)
        data.is_valid(raise_exception=True)
        client = client_consent_change(
            client_id=self.portal_client(request).client.id,
            opt_out=data.validated_data["outreach_opt_out"],
            actor=None,
            by_client=True,
            via="cabinet",
        )
        return Response(self._representation(client))


class PortalLocaleApi(PortalApiView):
    """The language and time zone the client reads the cabinet in: the client's `language` as
    one of Clientdesk's languages (its base language, else English), and its `timezone` (the
    outreach default zone when it has none)."""

    required_permissions = {"GET": CLIENT_SESSION}

    @extend_schema(
        responses={
            200: inline_serializer(
                "PortalLocale",
                {"language": serializers.CharField(), "timezone": serializers.CharField()},
            )
        },
        operation_id="portal_locale_get",
    )
    def get(self, request: Request) -> Response:
        client = self.portal_client(request).client
        zone = zone_or_none(client.timezone) or zone_or_none(
            outreach_settings_get().default_timezone
        )
        return Response(
            {
                "language": supported_language(client.language),
                "timezone": zone.key if zone else "UTC",
            }
        )
