"""Two-factor sign-in: TOTP (django-otp's `TOTPDevice`, one per user) and one-time recovery
codes (`RecoveryCode`, SHA-256 only). The writes are services in `services.py`; this module holds
what they and the views share: the code forms, the secret for enrolment, its QR code, and who
must enrol (`CLIENTDESK_REQUIRE_2FA_FOR`)."""

import hashlib
import re
import secrets
from base64 import b32encode
from binascii import unhexlify
from typing import Any
from urllib.parse import quote, urlencode

import segno
from django.conf import settings
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp.util import random_hex

from clientdesk.accounts.models import User
from clientdesk.accounts.roles import Role

RECOVERY_CODE_COUNT = 10
_TOTP_CODE = re.compile(r"[0-9]{6}")
# 16 characters of Crockford-like base32 (no 0/1/I/L/O), shown in four groups: 80 bits.
_RECOVERY_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_RECOVERY_CODE = re.compile(r"[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{16}")
_SEPARATORS = re.compile(r"[\s-]+")


def totp_code_or_none(text: str) -> str | None:
    """Six ASCII digits (spaces allowed between), or None; `int()` alone would take "1_2" or
    other scripts' digits."""
    code = _SEPARATORS.sub("", text or "")
    return code if _TOTP_CODE.fullmatch(code) else None


def recovery_code_or_none(text: str) -> str | None:
    """A recovery code in its stored form (upper case, no dashes or spaces), or None."""
    code = _SEPARATORS.sub("", text or "").upper()
    return code if _RECOVERY_CODE.fullmatch(code) else None


def recovery_code_new() -> str:
    return "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(16))


def recovery_code_shown(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, 16, 4))


def recovery_code_digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def totp_secret_new() -> str:
    """A new TOTP secret, hex as django-otp stores it (20 random bytes)."""
    return random_hex(20)


def totp_for(key: str, *, step: int = 30, digits: int = 6) -> TOTP:
    return TOTP(unhexlify(key.encode()), step=step, t0=0, digits=digits, drift=0)


def secret_base32(key: str) -> str:
    """The secret as people type it into an app by hand."""
    return b32encode(unhexlify(key.encode())).decode().rstrip("=")


def otpauth_uri(*, user: User, key: str) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code (the same form as
    `TOTPDevice.config_url`, for a secret not yet stored)."""
    issuer = str(getattr(settings, "OTP_TOTP_ISSUER", "Clientdesk")).replace(":", "")
    label = f"{issuer}:{user.get_username()}"
    params = urlencode(
        {"secret": secret_base32(key), "algorithm": "SHA1", "digits": 6, "period": 30}
    )
    return f"otpauth://totp/{quote(label)}?{params}&issuer={quote(issuer)}"


def qr_svg(data: str) -> str:
    """The QR code of `data` as an inline SVG element (no image file, no third party)."""
    qr = segno.make(data, error="m", micro=False)
    svg: str = qr.svg_inline(scale=4, dark="#111827", light="#ffffff", title="QR code")
    return svg


def totp_device(user: Any) -> TOTPDevice | None:
    """The user's confirmed authenticator, if they enrolled."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).first()


def two_factor_required(user: Any) -> bool:
    """Whether `user` must sign in with a second step (`CLIENTDESK_REQUIRE_2FA_FOR`)."""
    required = set(getattr(settings, "CLIENTDESK_REQUIRE_2FA_FOR", []))
    if not required or user is None or not getattr(user, "is_authenticated", False):
        return False
    if user.is_superuser and Role.ADMINISTRATOR in required:
        return True
    return bool(user.groups.filter(name__in=required).exists())
