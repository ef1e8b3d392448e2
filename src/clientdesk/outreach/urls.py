"""Routes of the Broadcasts pages."""

from django.urls import path

from clientdesk.outreach import views

app_name = "outreach"
urlpatterns = [
    path("", views.broadcast_list, name="list"),
    path("new/", views.broadcast_new, name="new"),
    path("review/", views.broadcast_review, name="review"),
    path("send/", views.broadcast_send, name="send"),
    path("matching/", views.audience_matching, name="matching"),
    path("<id:broadcast_id>/", views.broadcast_detail, name="detail"),
    path("<id:broadcast_id>/progress/", views.broadcast_progress, name="progress"),
    path("<id:broadcast_id>/recipients/", views.recipients_table, name="recipients"),
    path("<id:broadcast_id>/cancel/", views.broadcast_cancel, name="cancel"),
]
