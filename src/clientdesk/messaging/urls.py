from django.urls import path

from clientdesk.messaging import views

app_name = "messaging"
urlpatterns = [
    path("clients/<uuid:client_id>/send/", views.send_panel, name="panel"),
    path("clients/<uuid:client_id>/messages/", views.send_message, name="send"),
]
