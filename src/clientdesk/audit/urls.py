"""Routes of the audit pages."""

from django.urls import path

from clientdesk.audit import views

app_name = "audit"
urlpatterns = [
    path("clients/<uuid:client_id>/activity/", views.activity_log, name="client-activity"),
]
