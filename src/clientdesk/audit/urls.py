"""Routes of the audit pages: the client's Activity log and the Audit page."""

from django.urls import path

from clientdesk.audit import views

app_name = "audit"
urlpatterns = [
    path("clients/<id:client_id>/activity/", views.activity_log, name="client-activity"),
    path("audit/", views.audit_page, name="audit"),
    path("audit/verify/", views.audit_verify_now, name="audit-verify"),
    path("audit/checkpoint.txt", views.audit_checkpoint_download, name="audit-checkpoint"),
    path("audit/public-key.pem", views.audit_public_key_download, name="audit-public-key"),
]
