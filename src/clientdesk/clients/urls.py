"""Routes of the clients pages."""

from django.urls import path

from clientdesk.clients import views

app_name = "clients"
urlpatterns = [
    path("", views.client_list, name="list"),
    path("<id:client_id>/", views.client_detail, name="detail"),
]
