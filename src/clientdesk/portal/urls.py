"""Routes of the client's side under /portal/: the reference cabinet, the portal API and the
unsubscribe link of outreach e-mail."""

from django.urls import include, path

from clientdesk.portal import apis, file_apis, streams, views

app_name = "portal"

urlpatterns = [
    path("", views.cabinet, name="cabinet"),
    path("i18n/<language>.js", views.cabinet_catalog, name="catalog"),
    path("api/v1/session", apis.PortalSessionExchangeApi.as_view(), name="api-session"),
    path(
        "api/v1/session/refresh",
        apis.PortalSessionRefreshApi.as_view(),
        name="api-session-refresh",
    ),
    path("api/v1/session/end", apis.PortalSessionEndApi.as_view(), name="api-session-end"),
    path("api/v1/session/link", apis.PortalLinkRequestApi.as_view(), name="api-session-link"),
    path("api/v1/messages", apis.PortalMessagesApi.as_view(), name="api-messages"),
    path(
        "api/v1/messages/<id:message_id>/read",
        apis.PortalMessageReadApi.as_view(),
        name="api-message-read",
    ),
    path("api/v1/files", file_apis.PortalFileUploadApi.as_view(), name="api-files"),
    path("api/v1/files/<id:file_id>", file_apis.PortalFileDownloadApi.as_view(), name="api-file"),
    path("api/v1/events", streams.portal_events, name="api-events"),
    path("api/v1/preferences", apis.PortalPreferencesApi.as_view(), name="api-preferences"),
    path("api/v1/locale", apis.PortalLocaleApi.as_view(), name="api-locale"),
    path("unsubscribe/<token>", views.unsubscribe, name="unsubscribe"),
    path("", include("clientdesk.portal.push_urls")),  # Web Push: sw.js, manifest, api/v1/push/
]
