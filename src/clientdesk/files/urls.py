"""Routes of files outside the API: the signed download link."""

from django.urls import path

from clientdesk.files import views

app_name = "files"

urlpatterns = [
    path("signed/<token>", views.signed_download, name="signed"),
]
