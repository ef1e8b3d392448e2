"""Routes of the delivery pages."""

from django.urls import path

from clientdesk.delivery import views

app_name = "delivery"
urlpatterns = [
    path("", views.integrations, name="integrations"),
    path("save/", views.integrations_save, name="save"),
    path("rotate-secret/", views.integrations_rotate, name="rotate"),
    path("test/", views.integrations_test, name="test"),
    path(
        "clients/<id:client_id>/push-devices/",
        views.client_push_devices,
        name="client-push-devices",
    ),
]
