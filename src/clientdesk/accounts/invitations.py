"""The token of an invitation's set-password link: Django's password-reset token machinery
under its own salt, so a token made for one purpose is never accepted for another. It signs the
user's password hash and last sign-in, so it works once; it lapses after
`PASSWORD_RESET_TIMEOUT` (`CLIENTDESK_INVITATION_HOURS`)."""

from django.contrib.auth.tokens import PasswordResetTokenGenerator


class InvitationTokenGenerator(PasswordResetTokenGenerator):
    key_salt = "clientdesk.accounts.invitations.InvitationTokenGenerator"


invitation_tokens = InvitationTokenGenerator()
