"""Browser tests: Debian's Chromium driven by Playwright against pytest-django's live server.

One browser for the whole e2e package, a fresh context (cookies, storage) per test. Without
/usr/bin/chromium the tests are skipped loudly, or fail when CLIENTDESK_REQUIRE_BROWSER=1 (CI).
"""

import os
import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test.utils import override_settings

from clientdesk.accounts.models import User

# Playwright's sync API keeps an asyncio loop running in this thread, which makes Django refuse
# ORM calls from the test body ("You cannot call this from an async context").
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "e2e correct horse battery staple"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
VIEWPORT = {"width": 1280, "height": 800}


def _browser_unavailable(reason: str) -> None:
    message = f"E2E BROWSER TESTS NOT RUN: {reason}"
    if os.environ.get("CLIENTDESK_REQUIRE_BROWSER") == "1":
        pytest.fail(
            message + " (CLIENTDESK_REQUIRE_BROWSER=1, so this is a failure)", pytrace=False
        )
    warnings.warn(message, stacklevel=2)
    pytest.skip(message)


@pytest.fixture(scope="package", autouse=True)
def _static_files_from_app_directories() -> Iterator[None]:
    """Serve htmx, app.js and app.css straight from the app directories.

    The default storage is the manifest storage of `make run`, whose `{% static %}` fails
    (HTTP 500) until collectstatic has run; the live server's static handler serves from the
    finders, so the unhashed names of the plain storage are the ones it can answer.
    """
    plain = "django.contrib.staticfiles.storage.StaticFilesStorage"
    with override_settings(
        STORAGES={**settings.STORAGES, "staticfiles": {"BACKEND": plain}},
        WHITENOISE_USE_FINDERS=True,
    ):
        yield


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One Chromium for the package; stopped when the package ends, so no Playwright event loop
    is left running under the tests that come after."""
    if not CHROMIUM.exists():
        _browser_unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:  # pragma: no cover - dev extras not installed
        _browser_unavailable(f"Playwright is not installed ({error})")
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


@pytest.fixture
def live_server(transactional_db: None) -> Iterator[Any]:
    """Clientdesk under uvicorn (ASGI), as `make run` serves it, not Django's threaded WSGI test
    server: event streams are async and need an event loop to stay open."""
    from tests.servers import InProcessServer

    server = InProcessServer()
    # pytest-django's autouse helper toggles this on whatever `live_server` is; nothing to change.
    server._live_server_modified_settings = override_settings()  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(browser: Any, live_server: Any) -> Iterator[Any]:
    """A fresh context and page per test. Fails the test if a static file does not load, a
    script throws or the Content-Security-Policy refuses anything."""
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)
    context = browser.new_context(base_url=live_server.url, viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    page = context.new_page()
    broken: list[str] = []
    page.on(
        "response",
        lambda r: (
            broken.append(f"{r.status} {r.url}")
            if "/static/" in r.url and r.status >= 400
            else None
        ),
    )
    page.on("pageerror", lambda error: broken.append(f"script error: {error}"))
    # Every page of every browser test runs under the Content-Security-Policy: anything it
    # refuses (an inline script or style, eval, a foreign origin) fails the test.
    page.on(
        "console",
        lambda message: (
            broken.append(f"CSP: {message.text}")
            if "Content Security Policy" in message.text
            else None
        ),
    )
    try:
        yield page
    finally:
        context.close()
    assert not broken, f"static files or scripts broke in the browser: {broken}"


@pytest.fixture
def login(page: Any) -> Callable[[User], Any]:
    """Log in through the real form at /accounts/login/; returns the page on the Clients page."""
    from playwright.sync_api import expect

    def log_in(user: User) -> Any:
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(re.compile(r"/clients/$"))
        expect(page.get_by_role("heading", name="Clients", level=1)).to_be_visible()
        # The menus and drawers are app.js and htmx (deferred scripts): wait until they run.
        page.wait_for_load_state("load")
        return page

    return log_in


@pytest.fixture
def make_staff(make_user: Callable[..., User]) -> Callable[..., User]:
    """`make_user` with the password the login fixture types."""

    def make(role: str, **fields: Any) -> User:
        return make_user(role, password=PASSWORD, **fields)

    return make


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[[Any, str], Path]:
    """Save a PNG of a page or element into test-artifacts/ (git-ignored)."""

    def shoot(target: Any, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{request.node.name}-{name}.png"
        target.screenshot(path=str(path), animations="disabled")
        return path

    return shoot


@pytest.fixture
def agent_user(make_staff: Callable[..., User]) -> User:
    return make_staff("Agent", first_name="Alex", last_name="Agent")
