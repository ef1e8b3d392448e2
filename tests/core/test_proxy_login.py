"""Signing in through the shipped proxy configs on a port that is not 80 or 443, with and without
TLS, and the forwarded headers believed only from the proxy."""

import contextlib
import os
import re
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.test import RequestFactory, override_settings

from clientdesk.core.proxy import ForwardedHeadersMiddleware
from tests.core.proxies import caddy_command, nginx_command
from tests.servers import free_port, procfile_process

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "proxy correct horse battery staple"


@contextlib.contextmanager
def _proxy(
    command: list[str], tmp: Path, url: str, verify: ssl.SSLContext | bool = True
) -> Iterator[None]:
    env = {**os.environ, "HOME": str(tmp), "XDG_DATA_HOME": str(tmp), "XDG_CONFIG_HOME": str(tmp)}
    with open(tmp / "proxy.log", "wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/livez", timeout=2, verify=verify).status_code < 500:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the proxy did not serve: {(tmp / 'proxy.log').read_text()}")
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def _app(tmp: Path, **env: str) -> Iterator[tuple[int, int]]:
    """The Procfile's web and events processes; yields their ports."""
    with (
        procfile_process("web", tmp / "web.log", **env) as (web, _),
        procfile_process("events", tmp / "events.log", **env) as (events, _),
    ):
        yield int(web.rsplit(":", 1)[1]), int(events.rsplit(":", 1)[1])


def _sign_in(http: httpx.Client, base: str, username: str) -> httpx.Response:
    """What a browser does: the form, then a POST carrying the page's Origin and Referer."""
    page = http.get("/accounts/login/")
    assert page.status_code == 200, page.text
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert match, page.text
    return http.post(
        "/accounts/login/",
        data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": match[1]},
        headers={"Origin": base, "Referer": f"{base}/accounts/login/"},
    )


def _require(proxy: str) -> None:
    if shutil.which(proxy) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{proxy} is not installed (.ci/run installs it)")
        pytest.skip(f"{proxy} is not installed (apt-get install {proxy})")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("proxy", ["nginx", "caddy"])
@pytest.mark.parametrize("public_url", [True, False], ids=["public-url", "host-only"])
def test_staff_sign_in_through_the_proxy_on_another_port(
    proxy, public_url, make_user, tmp_path, settings
):
    """Plain HTTP on a free port (as on a private network): the browser's Host, port included,
    reaches Django, so its Origin check passes with or without CLIENTDESK_PUBLIC_URL."""
    _require(proxy)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    user = make_user("Agent", first_name="Portia", last_name="Port", password=PASSWORD)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"CLIENTDESK_BEHIND_PROXY": "1", "SECURE_COOKIES": "0"}
    if public_url:
        env["CLIENTDESK_PUBLIC_URL"] = base
    build = nginx_command if proxy == "nginx" else caddy_command
    with _app(tmp_path, **env) as (web, events):
        command = build(tmp_path, web=[web], events=[events], port=port)
        with _proxy(command, tmp_path, base), httpx.Client(base_url=base, timeout=20) as http:
            signed_in = _sign_in(http, base, user.username)
            assert signed_in.status_code == 302, signed_in.text[:2000]
            assert signed_in.headers["location"] == "/clients/"
            clients = http.get("/clients/")
            assert clients.status_code == 200
            assert "Portia" in clients.text

            # A Host the deployment does not serve never gets a page: Django refuses it (400)
            # behind nginx, and Caddy answers an empty 200 for a site it does not serve.
            hostile = http.get("/accounts/login/", headers={"Host": f"evil.example:{port}"})
            if proxy == "nginx":
                assert hostile.status_code == 400 and "Bad Request (400)" in hostile.text
            else:
                assert (hostile.status_code, hostile.content) == (200, b"")


@pytest.mark.django_db(transaction=True)
def test_staff_sign_in_through_nginx_with_tls_and_http2_on_port_8443_style(
    make_user, tmp_path, settings
):
    """The `#tls` lines of deploy/nginx.conf switched on, on a free port: HTTP/2 to the
    browser, Django sees HTTPS (Secure cookies, HSTS) and the public origin with its port."""
    _require("nginx")
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    user = make_user("Agent", first_name="Tessa", last_name="Tls", password=PASSWORD)
    port, tls_port = free_port(), free_port()
    base = f"https://127.0.0.1:{tls_port}"
    env = {"CLIENTDESK_BEHIND_PROXY": "1", "CLIENTDESK_PUBLIC_URL": base}
    with _app(tmp_path, **env) as (web, events):
        command = nginx_command(tmp_path, web=[web], events=[events], port=port, tls_port=tls_port)
        trust = ssl.create_default_context(cafile=tmp_path / "cert.pem")
        with _proxy(command, tmp_path, base, trust):
            with httpx.Client(base_url=base, timeout=20, verify=trust) as http:
                signed_in = _sign_in(http, base, user.username)
                assert signed_in.status_code == 302, signed_in.text[:2000]
                assert signed_in.headers["location"] == "/clients/"
                cookies = signed_in.headers.get_list("set-cookie")
                session = [c for c in cookies if "sessionid=" in c]
                assert session and "Secure" in session[0], session
                clients = http.get("/clients/")
                assert clients.status_code == 200 and "Tessa" in clients.text
                assert "max-age=31536000" in clients.headers["strict-transport-security"]

            # Another site's form is still refused: the public origin is trusted, not any.
            with httpx.Client(base_url=base, timeout=20, verify=trust) as http:
                page = http.get("/accounts/login/")
                token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
                assert token, page.text[:500]
                forged = http.post(
                    "/accounts/login/",
                    data={
                        "username": user.username,
                        "password": PASSWORD,
                        "csrfmiddlewaretoken": token[1],
                    },
                    headers={"Origin": "https://evil.example", "Referer": "https://evil.example/"},
                )
                assert forged.status_code == 403

            # Browsers get HTTP/2 over TLS; plain HTTP only redirects to HTTPS.
            curl = subprocess.run(
                ["curl", "-s", "--http2", "--cacert", str(tmp_path / "cert.pem"),
                 "-o", "/dev/null", "-w", "%{http_version}", f"{base}/livez"],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            assert curl.stdout == "2", (curl.stdout, curl.stderr)
            plain = httpx.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=10)
            assert plain.status_code == 301
            assert plain.headers["location"].startswith("https://127.0.0.1")


# --- the forwarded headers, believed only from a trusted proxy ------------------------------


def _seen(**meta: str) -> dict[str, object]:
    """What the app sees of a request after the middleware."""
    seen: dict[str, object] = {}

    def view(request):
        seen.update(
            host=request.get_host(), secure=request.is_secure(), ip=request.META["REMOTE_ADDR"]
        )
        return None

    ForwardedHeadersMiddleware(view)(RequestFactory().get("/", **meta))
    return seen


FORGED = {
    "HTTP_X_FORWARDED_HOST": "desk.example.com:8443",
    "HTTP_X_FORWARDED_PROTO": "https",
    "HTTP_X_FORWARDED_PORT": "8443",
    "HTTP_X_FORWARDED_FOR": "6.6.6.6, 198.51.100.7",
}
BEHIND = {
    "BEHIND_PROXY": True,
    "TRUSTED_PROXIES": ["10.0.0.0/8", "::1"],
    "USE_X_FORWARDED_HOST": True,
    "USE_X_FORWARDED_PORT": True,
    "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
    "ALLOWED_HOSTS": ["testserver", "desk.example.com"],
}


@override_settings(**BEHIND)
def test_the_proxy_s_headers_name_the_browser_s_address_scheme_and_the_client():
    seen = _seen(REMOTE_ADDR="10.1.2.3", **FORGED)
    # The client's own claim (6.6.6.6) is left of what the proxy appended: not believed.
    assert seen == {"host": "desk.example.com:8443", "secure": True, "ip": "198.51.100.7"}
    # Through two trusted proxies, the first address that is not one of them.
    chain = {**FORGED, "HTTP_X_FORWARDED_FOR": "198.51.100.7, 10.9.9.9"}
    assert _seen(REMOTE_ADDR="10.1.2.3", **chain)["ip"] == "198.51.100.7"


@override_settings(**BEHIND)
def test_forwarded_headers_from_anyone_but_the_proxy_are_dropped():
    seen = _seen(REMOTE_ADDR="203.0.113.5", **FORGED)
    assert seen == {"host": "testserver", "secure": False, "ip": "203.0.113.5"}


@override_settings(**BEHIND)
@pytest.mark.parametrize(
    "forwarded_for", ["not-an-address", "", " , ", "1.2.3.4\x00", "x" * 10_000]
)
def test_a_malformed_forwarded_for_leaves_the_peer_address(forwarded_for):
    seen = _seen(REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR=forwarded_for)
    assert seen["ip"] == "10.1.2.3"


@override_settings(**{**BEHIND, "BEHIND_PROXY": False, "TRUSTED_PROXIES": ["127.0.0.1"]})
def test_without_behind_proxy_nothing_forwarded_is_believed():
    seen = _seen(REMOTE_ADDR="127.0.0.1", **FORGED)
    assert seen == {"host": "testserver", "secure": False, "ip": "127.0.0.1"}


def _settings_with(**env: str) -> subprocess.CompletedProcess[str]:
    script = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.PUBLIC_URL, s.ALLOWED_HOSTS, s.CSRF_TRUSTED_ORIGINS, s.USE_X_FORWARDED_HOST)"
    )
    keep = ("PATH", "HOME", "LANG", "CLIENTDESK_VAR_DIR")
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={
            **{k: os.environ[k] for k in keep if k in os.environ},
            "DJANGO_SETTINGS_MODULE": "clientdesk.settings",
            "SECRET_KEY": "x" * 50,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_public_url_gives_the_allowed_host_and_the_trusted_origin():
    result = _settings_with(
        CLIENTDESK_PUBLIC_URL="https://desk.example.com:8443/",
        ALLOWED_HOSTS="desk.internal",
        CLIENTDESK_BEHIND_PROXY="1",
    )
    assert result.stdout.strip() == (
        "https://desk.example.com:8443 ['desk.internal', 'desk.example.com'] "
        "['https://desk.example.com:8443'] True"
    ), result.stderr
    assert _settings_with().stdout.rstrip("\n") == " ['127.0.0.1', 'localhost'] [] False"


@pytest.mark.parametrize(
    "bad",
    ["desk.example.com", "ftp://desk.example.com", "https://desk.example.com/app", "https://"],
)
def test_a_public_url_that_is_not_an_origin_is_refused_at_start(bad):
    result = _settings_with(CLIENTDESK_PUBLIC_URL=bad)
    assert result.returncode != 0
    assert "CLIENTDESK_PUBLIC_URL must be http(s)://host[:port]" in result.stderr


def test_old_secret_keys_still_verify_what_they_signed_during_a_rotation():
    """A portal token or link signed before SECRET_KEY changed is accepted while the old key is
    in SECRET_KEY_FALLBACKS, and refused once it is gone."""
    script = (
        "import django; django.setup(); from django.core import signing; "
        "old = signing.TimestampSigner(key='old-key-' * 8, salt='s').sign('x'); "
        "print(signing.TimestampSigner(salt='s').unsign(old))"
    )
    keep = ("PATH", "HOME", "LANG", "CLIENTDESK_VAR_DIR")
    env = {
        **{k: os.environ[k] for k in keep if k in os.environ},
        "DJANGO_SETTINGS_MODULE": "clientdesk.settings",
        "SECRET_KEY": "new-key-" * 8,
    }
    run = [sys.executable, "-c", script]
    rotating = {**env, "SECRET_KEY_FALLBACKS": "another-old-key," + "old-key-" * 8}
    accepted = subprocess.run(run, cwd=ROOT, env=rotating, capture_output=True, text=True)
    assert accepted.stdout.strip() == "x", accepted.stderr
    refused = subprocess.run(run, cwd=ROOT, env=env, capture_output=True, text=True)
    assert "BadSignature" in refused.stderr
