"""Web Push routes of the client's side, included by `portal/urls.py` under /portal/ (so they
are named `portal:...`): the service worker and manifest, the key, devices and receipts."""

from django.urls import path

from clientdesk.portal import push_apis, push_views

urlpatterns = [
    path("sw.js", push_views.service_worker, name="service-worker"),
    path("manifest.webmanifest", push_views.manifest, name="manifest"),
    path("api/v1/push/key", push_apis.PushKeyApi.as_view(), name="api-push-key"),
    path(
        "api/v1/push/subscriptions",
        push_apis.PushSubscriptionsApi.as_view(),
        name="api-push-subscriptions",
    ),
    path("api/v1/push/receipts", push_apis.PushReceiptsApi.as_view(), name="api-push-receipts"),
]
