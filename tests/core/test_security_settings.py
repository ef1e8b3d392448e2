"""Security headers on every response, and the production settings pass `check --deploy`."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_every_response_carries_the_policies(client):
    response = client.get("/accounts/login/")
    policy = response["Content-Security-Policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'"):
        assert directive in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy
    assert "camera=()" in response["Permissions-Policy"]
    assert "geolocation=()" in response["Permissions-Policy"]


def test_no_template_has_inline_script_or_style():
    """What the policy would refuse, found before a browser does."""
    offenders = []
    for path in (ROOT / "src").rglob("*.html"):
        text = path.read_text()
        for needle in ("<script>", "<style", " style=", " onclick=", " onload=", "hx-on"):
            if needle in text:
                offenders.append(f"{path.relative_to(ROOT)}: {needle.strip()}")
    assert offenders == []


def _production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    # Only what a deployment sets: nothing of this test process (the browser tests set
    # DJANGO_ALLOW_ASYNC_UNSAFE for themselves, which check --deploy rightly refuses).
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    env.update(
        SECRET_KEY=secrets.token_urlsafe(60),
        ALLOWED_HOSTS="clientdesk.example",
        SECURE_SSL_REDIRECT="1",
        CLIENTDESK_VAR_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        **extra,
    )
    return env


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=_production_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(("debug", "secure"), [("0", True), ("1", False)])
def test_cookies_are_secure_and_hsts_on_whenever_debug_is_off(tmp_path, debug, secure):
    script = (
        "from django.conf import settings as s;"
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS > 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {script}"],
        cwd=ROOT,
        env={
            **_production_env(tmp_path, DEBUG=debug),
            "DJANGO_SETTINGS_MODULE": "clientdesk.settings",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.split() == [str(secure)] * 3, result.stderr


def test_a_tls_proxy_is_trusted_only_when_configured(tmp_path):
    script = "from django.conf import settings as s; print(s.SECURE_PROXY_SSL_HEADER)"
    outputs = []
    for extra in ({}, {"CLIENTDESK_BEHIND_TLS_PROXY": "1"}):
        result = subprocess.run(
            [sys.executable, "-c", f"import django; django.setup(); {script}"],
            cwd=ROOT,
            env={
                **_production_env(tmp_path, **extra),
                "DJANGO_SETTINGS_MODULE": "clientdesk.settings",
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
        outputs.append(result.stdout.strip())
    assert outputs == ["None", "('HTTP_X_FORWARDED_PROTO', 'https')"]
