"""Routes of the messaging pages."""

from django.urls import path

from clientdesk.messaging import template_views, views

app_name = "messaging"
urlpatterns = [
    path("clients/<id:client_id>/send/", views.send_panel, name="panel"),
    path("clients/<id:client_id>/messages/", views.send_message, name="send"),
    path("clients/<id:client_id>/sent/", views.sent_list, name="sent-list"),
    path("deliveries/<id:delivery_id>/retry/", views.retry_delivery, name="retry"),
    path("templates/", template_views.template_list, name="template-list"),
    path("templates/new/", template_views.template_new, name="template-new"),
    path("templates/preview/", template_views.preview, name="preview"),
    path("templates/preview-clients/", template_views.preview_clients, name="preview-clients"),
    path("templates/<id:template_id>/", template_views.template_detail, name="template-detail"),
    path(
        "templates/<id:template_id>/active/",
        template_views.template_activation,
        name="template-active",
    ),
]
