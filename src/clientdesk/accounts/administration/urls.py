"""Routes of the Administration area."""

from django.urls import path

from clientdesk.accounts.administration import views

app_name = "administration"
urlpatterns = [
    path("", views.users_page, name="users"),
    path("users/invite/", views.user_invite_view, name="invite"),
    path("users/<id:user_id>/", views.user_page, name="user"),
    path("users/<id:user_id>/roles/", views.user_roles_view, name="user-roles"),
    path("users/<id:user_id>/deactivate/", views.user_deactivate_view, name="user-deactivate"),
    path("users/<id:user_id>/reactivate/", views.user_reactivate_view, name="user-reactivate"),
    path("users/<id:user_id>/invitation/", views.user_invitation_view, name="user-invitation"),
    path(
        "users/<id:user_id>/two-factor/reset/",
        views.user_two_factor_reset_view,
        name="user-two-factor-reset",
    ),
    path("tokens/", views.tokens_page, name="tokens"),
    path("tokens/create/", views.token_create_view, name="token-create"),
    path("tokens/<id:token_id>/revoke/", views.token_revoke_view, name="token-revoke"),
    path("roles/", views.roles_page, name="roles"),
]
