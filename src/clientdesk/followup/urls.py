"""Routes of the follow-up pages."""

from django.urls import path

from clientdesk.followup import views

app_name = "followup"
urlpatterns = [
    path("messages/", views.messages_page, name="messages"),
    path("settings/follow-up/", views.settings_page, name="settings"),
]
