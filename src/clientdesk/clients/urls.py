"""Routes of the clients pages."""

from django.urls import path

from clientdesk.clients import views

app_name = "clients"
urlpatterns = [
    path("", views.client_list, name="list"),
    path("import/", views.client_import, name="import"),
    path("<id:client_id>/", views.client_detail, name="detail"),
    path("<id:client_id>/timezone", views.client_timezone, name="timezone"),
    path("<id:client_id>/consent", views.client_consent, name="consent"),
]
