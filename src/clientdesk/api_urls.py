"""Routes of the staff HTTP API, version 1."""

from django.urls import path

from clientdesk.audit.apis import ClientActivityApi
from clientdesk.audit.ledger_apis import (
    AuditCheckpointApi,
    AuditConsistencyProofApi,
    AuditInclusionProofApi,
    AuditPublicKeyApi,
    AuditRecordsApi,
)
from clientdesk.clients.apis import ClientDetailApi, ClientImportApi, ClientListCreateApi
from clientdesk.delivery.apis import OutgoingEndpointApi, RotateSecretApi, SendTestEventApi
from clientdesk.files.apis import FileDownloadApi, FileUploadApi
from clientdesk.followup.apis import FollowUpSettingsApi, MessageListApi
from clientdesk.followup.notification_apis import NotificationListApi, NotificationReadApi
from clientdesk.messaging.apis import (
    ClientMessagesApi,
    MessageDetailApi,
    MessagePreviewApi,
    TemplateDetailApi,
    TemplateListCreateApi,
)
from clientdesk.messaging.export_apis import MessagesExportApi
from clientdesk.messaging.streams import staff_events
from clientdesk.outreach.apis import (
    BroadcastCancelApi,
    BroadcastDetailApi,
    BroadcastListCreateApi,
    BroadcastRecipientsApi,
    OutreachSettingsApi,
)
from clientdesk.portal.apis import PortalSessionsApi

urlpatterns = [
    path("events", staff_events, name="api-events"),
    path("portal/sessions", PortalSessionsApi.as_view(), name="api-portal-sessions"),
    path("clients", ClientListCreateApi.as_view(), name="api-clients"),
    path("clients/import", ClientImportApi.as_view(), name="api-clients-import"),
    path("clients/<id:client_id>", ClientDetailApi.as_view(), name="api-client"),
    path(
        "clients/<id:client_id>/messages",
        ClientMessagesApi.as_view(),
        name="api-client-messages",
    ),
    path(
        "clients/<id:client_id>/activity",
        ClientActivityApi.as_view(),
        name="api-client-activity",
    ),
    path(
        "clients/<id:client_id>/messages/preview",
        MessagePreviewApi.as_view(),
        name="api-client-messages-preview",
    ),
    path("files", FileUploadApi.as_view(), name="api-files"),
    path("files/<id:file_id>", FileDownloadApi.as_view(), name="api-file"),
    path("messages", MessageListApi.as_view(), name="api-messages"),
    path("messages/export", MessagesExportApi.as_view(), name="api-messages-export"),
    path("messages/<id:message_id>", MessageDetailApi.as_view(), name="api-message"),
    path("notifications", NotificationListApi.as_view(), name="api-notifications"),
    path("notifications/read", NotificationReadApi.as_view(), name="api-notifications-read"),
    path("settings/follow-up", FollowUpSettingsApi.as_view(), name="api-followup-settings"),
    path("settings/outreach", OutreachSettingsApi.as_view(), name="api-outreach-settings"),
    path("broadcasts", BroadcastListCreateApi.as_view(), name="api-broadcasts"),
    path("broadcasts/<id:broadcast_id>", BroadcastDetailApi.as_view(), name="api-broadcast"),
    path(
        "broadcasts/<id:broadcast_id>/recipients",
        BroadcastRecipientsApi.as_view(),
        name="api-broadcast-recipients",
    ),
    path(
        "broadcasts/<id:broadcast_id>/cancel",
        BroadcastCancelApi.as_view(),
        name="api-broadcast-cancel",
    ),
    path("integration/outgoing-endpoint", OutgoingEndpointApi.as_view(), name="api-endpoint"),
    path(
        "integration/outgoing-endpoint/rotate-secret",
        RotateSecretApi.as_view(),
        name="api-endpoint-rotate",
    ),
    path(
        "integration/outgoing-endpoint/test", SendTestEventApi.as_view(), name="api-endpoint-test"
    ),
    path("audit/records", AuditRecordsApi.as_view(), name="api-audit-records"),
    path(
        "audit/records/<int:sequence>/proof",
        AuditInclusionProofApi.as_view(),
        name="api-audit-proof",
    ),
    path("audit/checkpoint", AuditCheckpointApi.as_view(), name="api-audit-checkpoint"),
    path("audit/public-key", AuditPublicKeyApi.as_view(), name="api-audit-public-key"),
    path("audit/consistency", AuditConsistencyProofApi.as_view(), name="api-audit-consistency"),
    path("templates", TemplateListCreateApi.as_view(), name="api-templates"),
    path("templates/<id:template_id>", TemplateDetailApi.as_view(), name="api-template"),
]
