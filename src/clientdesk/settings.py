"""One settings module for every deployment, configured from the environment."""

import os
import secrets
from importlib import metadata
from pathlib import Path

import dj_database_url

from clientdesk.core.logs import logging_config
from clientdesk.core.multiproc import multiproc_dir_prepare

BASE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BASE_DIR.parent.parent
VAR_DIR = Path(os.environ.get("CLIENTDESK_VAR_DIR", PROJECT_DIR / "var"))
# Where the worker processes of one server start sum their metrics (PROMETHEUS_MULTIPROC_DIR),
# chosen before anything imports prometheus_client: core/multiproc.py, docs/OPERATIONS.md.
METRICS_MULTIPROC_DIR = multiproc_dir_prepare(VAR_DIR)


def _env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _secret_key() -> str:
    """SECRET_KEY from the environment, or one generated once into var/ for embedded mode."""
    if key := os.environ.get("SECRET_KEY"):
        return key
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    path = VAR_DIR / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


DEBUG = _env_bool("DEBUG")
SECRET_KEY = _secret_key()
# Old keys still accepted for what they signed (sessions, portal tokens, links) while a new
# SECRET_KEY takes over: comma-separated (docs/OPERATIONS.md, "Key rotation").
SECRET_KEY_FALLBACKS = [k for k in os.environ.get("SECRET_KEY_FALLBACKS", "").split(",") if k]


def _public_url(value: str) -> tuple[str, str, str]:
    """CLIENTDESK_PUBLIC_URL as (URL without a trailing slash, origin, host); empty if unset."""
    from urllib.parse import urlsplit

    url = value.strip().rstrip("/")
    if not url:
        return "", "", ""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.path or parts.query:
        raise ValueError(
            f"CLIENTDESK_PUBLIC_URL must be http(s)://host[:port] and nothing more, not {value!r}"
        )
    return url, f"{parts.scheme}://{parts.netloc}", parts.hostname


# The address people open, e.g. https://desk.example.com or http://10.0.0.5:18080: its host is
# allowed, its origin trusted for CSRF, and links sent out of the app start with it.
PUBLIC_URL, _public_origin, _public_host = _public_url(os.environ.get("CLIENTDESK_PUBLIC_URL", ""))
ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h]
ALLOWED_HOSTS += [_public_host] if _public_host and _public_host not in ALLOWED_HOSTS else []
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]
CSRF_TRUSTED_ORIGINS += [_public_origin] if _public_origin else []

INSTALLED_APPS = [
    "clientdesk.core",
    "clientdesk.accounts",
    "clientdesk.clients",
    "clientdesk.audit",
    "clientdesk.files",
    "clientdesk.delivery",
    "clientdesk.messaging",
    "clientdesk.followup",
    "clientdesk.outreach",
    "clientdesk.portal",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
]

MIDDLEWARE = [
    # First, to see every response: under ASGI, streams synchronous iterators chunk by chunk.
    "clientdesk.core.streaming.async_streaming_middleware",
    # Before anything reads the scheme, host or client address (forwarded only by the proxy).
    "clientdesk.core.proxy.ForwardedHeadersMiddleware",
    # Next, to give every answer (static files, errors) its request id, access-log line and
    # request metrics (core/access.py).
    "clientdesk.core.middleware.RequestIdMiddleware",
    "clientdesk.core.access.AccessMiddleware",
    "clientdesk.core.middleware.ApiProblemMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Before CSRF: a wrong method under the API is 405 with Allow, never a CSRF 403.
    "clientdesk.core.middleware.ApiRouteMiddleware",
    # A staff API request with a bearer token skips what follows for signed-in pages only (CSRF,
    # messages, htmx, 2FA enrolment, lockout): core/fast_path.py.
    "clientdesk.core.fast_path.ApiTokenFastPath",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): signed in with the second step (accounts/two_factor.py).
    "django_otp.middleware.OTPMiddleware",
    # The user's id in log lines, once something loads the user.
    "clientdesk.core.access.UserIdMiddleware",
    # After authentication: the user's own time zone comes first.
    "clientdesk.core.local_time.LocalTimeMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # After htmx and messages: sends a user of CLIENTDESK_REQUIRE_2FA_FOR to enrolment first.
    "clientdesk.accounts.middleware.TwoFactorRequiredMiddleware",
    "axes.middleware.AxesMiddleware",
    "clientdesk.core.middleware.ApplicationErrorMiddleware",
    "clientdesk.core.middleware.TextValidityMiddleware",
]
# Under these prefixes every error is application/problem+json (core/middleware.py).
CLIENTDESK_API_PATH_PREFIXES = ("/api/", "/portal/api/")
CSRF_FAILURE_VIEW = "clientdesk.core.views.csrf_failure"

ROOT_URLCONF = "clientdesk.urls"
ASGI_APPLICATION = "clientdesk.asgi.application"
WSGI_APPLICATION = "clientdesk.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "builtins": ["template_partials.templatetags.partials"],
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "clientdesk.core.context_processors.permissions",
                "clientdesk.delivery.context_processors.integration_alert",
                "clientdesk.followup.context_processors.followup_alert",
                "clientdesk.followup.context_processors.unread_replies",
                "clientdesk.delivery.context_processors.worker_alert",
                "clientdesk.core.local_time.local_time",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------

DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'clientdesk.sqlite3'}"
_db = dj_database_url.parse(DATABASE_URL, conn_max_age=0 if DEBUG else 60)
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock at
    # BEGIN so two writers queue on the busy timeout instead of failing mid-transaction.
    _db["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
            "PRAGMA foreign_keys=ON; PRAGMA busy_timeout=20000;"
        ),
    }
    _db["CONN_MAX_AGE"] = 0
    _db["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
elif _db["ENGINE"] == "django.db.backends.postgresql":
    # A pool per process: under ASGI, sync views run on many threads, and persistent
    # per-thread connections would pile up to the server's limit.
    _db["CONN_MAX_AGE"] = 0
    _db["OPTIONS"] = {
        **(_db.get("OPTIONS") or {}),
        # Parameters travel beside the statement instead of being quoted into it in Python:
        # less CPU per statement, most of all for bulk inserts of JSON (attempts, events).
        # SET, LISTEN, NOTIFY and DDL then take no parameters (pg_notify() in a SELECT does).
        "server_side_binding": True,
        "pool": {
            "min_size": 1,
            "max_size": int(os.environ.get("CLIENTDESK_DB_POOL_SIZE", "10")),
            "timeout": 10,
        },
    }
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth --------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "clientdesk.accounts.backends.OneQueryModelBackend",
]
# Seconds a process keeps an API token's user and a user's permission set in memory; changes made
# in the process take effect at once, in the others within this bound (accounts/auth_cache.py).
AUTH_CACHE_SECONDS = float(os.environ.get("CLIENTDESK_AUTH_CACHE_SECONDS", "5"))
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "clients:list"
LOGOUT_REDIRECT_URL = "login"

# Five failed logins for one username from one address lock that pair for 15 minutes.
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = 0.25
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False

# Two-factor sign-in (TOTP with recovery codes). The roles named here (comma-separated) must
# enrol before any other page; a superuser counts as an Administrator. Production (no DEBUG)
# requires it of Administrators by default; DEBUG, and `make run`'s demo, require it of nobody.
CLIENTDESK_REQUIRE_2FA_FOR = [
    role.strip()
    for role in os.environ.get(
        "CLIENTDESK_REQUIRE_2FA_FOR", "" if DEBUG else "Administrator"
    ).split(",")
    if role.strip()
]
OTP_TOTP_ISSUER = os.environ.get("CLIENTDESK_BUSINESS_NAME", "Clientdesk")
# How long the password step waits for the code, in seconds.
CLIENTDESK_2FA_PENDING_SECONDS = 300
# An invitation's set-password link is valid this long (Django's password-reset tokens).
CLIENTDESK_INVITATION_HOURS = int(os.environ.get("CLIENTDESK_INVITATION_HOURS", "72"))
PASSWORD_RESET_TIMEOUT = CLIENTDESK_INVITATION_HOURS * 3600

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# Without DEBUG, cookies are Secure and browsers are told to use HTTPS only (HSTS, sent on
# HTTPS responses). SECURE_SSL_REDIRECT=1 redirects plain HTTP to HTTPS where no proxy does.
SESSION_COOKIE_SECURE = _env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = 0 if DEBUG else int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = _env_bool("SECURE_HSTS_PRELOAD", True)
SECURE_SSL_REDIRECT = _env_bool("SECURE_SSL_REDIRECT")
# Behind the reverse proxy of deploy/ (CLIENTDESK_BEHIND_PROXY=1; the older name
# CLIENTDESK_BEHIND_TLS_PROXY means the same): the browser's scheme, host and port come from the
# proxy's X-Forwarded-Proto, -Host and -Port, and the client's address from X-Forwarded-For, but
# only from a peer in CLIENTDESK_TRUSTED_PROXIES (core/proxy.py drops them from anyone else).
BEHIND_PROXY = _env_bool("CLIENTDESK_BEHIND_PROXY") or _env_bool("CLIENTDESK_BEHIND_TLS_PROXY")
TRUSTED_PROXIES = [
    p.strip()
    for p in os.environ.get("CLIENTDESK_TRUSTED_PROXIES", "127.0.0.1,::1").split(",")
    if p.strip()
]
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = True
    USE_X_FORWARDED_PORT = True
# No inline script or style anywhere (docs/ARCHITECTURE.md): scripts, styles, images, fonts and
# requests come from this origin only.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}
PERMISSIONS_POLICY: dict[str, list[str]] = {
    feature: []
    for feature in (
        "accelerometer",
        "autoplay",
        "camera",
        "display-capture",
        "encrypted-media",
        "fullscreen",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "usb",
    )
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# --- I18N / time ---------------------------------------------------------------

LANGUAGE_CODE = "en"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
# The languages clients read the cabinet, the portal e-mails and the unsubscribe page in,
# chosen by the client's own `language` (core/languages.py), never by LocaleMiddleware; staff
# pages stay in LANGUAGE_CODE. Each app that speaks to clients keeps its catalogs in its own
# `locale/` (portal, messaging), beside the strings they translate (docs/PORTAL.md, Languages).
LANGUAGES = [
    ("en", "English"),
    ("de", "Deutsch"),
    ("fr", "Français"),
    ("es", "Español"),
    ("pt", "Português"),
    ("pt-br", "Português (Brasil)"),
]
USE_TZ = True

# --- Static files ---------------------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Tests and DEBUG serve straight from the app directories; `make run` collects first.
WHITENOISE_USE_FINDERS = DEBUG or _env_bool("CLIENTDESK_STATIC_FINDERS")
if WHITENOISE_USE_FINDERS:
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}

# --- Files -----------------------------------------------------------------------

# Uploads stream to a temporary file on disk as they arrive (never held in memory), hashed
# with SHA-256 on the way (files/uploads.py).
FILE_UPLOAD_HANDLERS = ["clientdesk.files.uploads.HashingUploadHandler"]
# Where files live: var/files/ by default, or s3://BUCKET?endpoint_url=... (docs/FILES.md).
FILES_URL = os.environ.get("CLIENTDESK_FILES_URL", "")
FILES_DIR = VAR_DIR / "files"
FILES_MAX_BYTES = int(float(os.environ.get("CLIENTDESK_MAX_FILE_MB", "10")) * 1024 * 1024)
# A client's own uploads: how many an hour, and how many bytes in all.
FILES_CLIENT_UPLOADS_PER_HOUR = int(os.environ.get("CLIENTDESK_CLIENT_UPLOADS_PER_HOUR", "30"))
FILES_CLIENT_TOTAL_BYTES = int(
    float(os.environ.get("CLIENTDESK_CLIENT_FILES_TOTAL_MB", "200")) * 1024 * 1024
)
# clamd's socket (a path, or tcp://host:port): every upload is scanned, and refused while it
# does not answer. Empty: no scan.
FILES_CLAMD_SOCKET = os.environ.get("CLIENTDESK_CLAMD_SOCKET", "")
# How long an upload waits for clamd's verdict before it is refused as unscanned.
FILES_CLAMD_TIMEOUT_SECONDS = 30.0

# --- API -------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "clientdesk.accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["clientdesk.core.gate.DeclaredPermission"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["clientdesk.core.parsers.CheckedJSONParser"],
    "EXCEPTION_HANDLER": "clientdesk.core.problems.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Clientdesk API",
    "DESCRIPTION": "Send private messages to clients and read their activity.",
    # The release in pyproject.toml and CHANGELOG.md, never a second copy of it.
    "VERSION": metadata.version("clientdesk"),
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # `<id:…>` in a route (core/converters.py) is a UUID.
    "PATH_CONVERTER_OVERRIDES": {"id": {"type": "string", "format": "uuid"}},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "clientdesk.core.openapi.add_problem_responses",
    ],
}

# --- Clientdesk --------------------------------------------------------------------

MESSAGE_MAX_LENGTH = 5000
# Multiplies every retry delay; tests and demos shrink the schedule, production keeps 1.
DELIVERY_RETRY_SCALE = float(os.environ.get("CLIENTDESK_RETRY_SCALE", "1"))
# A worker holds a claimed delivery this long; after that another worker may take it over.
DELIVERY_LEASE_SECONDS = int(os.environ.get("CLIENTDESK_LEASE_SECONDS", "60"))
# An endpoint whose attempts keep failing this long is disabled.
ENDPOINT_DISABLE_AFTER_HOURS = float(
    os.environ.get("CLIENTDESK_ENDPOINT_DISABLE_AFTER_HOURS", "24")
)
BUSINESS_NAME = os.environ.get("CLIENTDESK_BUSINESS_NAME", "Clientdesk")
# Webhook URLs resolving to loopback, private, link-local... are refused unless this is on.
ALLOW_PRIVATE_WEBHOOK_URLS = _env_bool("CLIENTDESK_ALLOW_PRIVATE_WEBHOOK_URLS")
IDEMPOTENCY_KEY_TTL_HOURS = int(os.environ.get("CLIENTDESK_IDEMPOTENCY_TTL_HOURS", "24"))
CLIENTS_PAGE_SIZE = 25
# The audit ledger's checkpoints: origin line and signing key name (see audit/signing.py for
# the key itself), retired keys' verifier strings still trusted for old checkpoints, and how
# often the worker signs a checkpoint when the ledger grew.
CLIENTDESK_AUDIT_ORIGIN = os.environ.get("CLIENTDESK_AUDIT_ORIGIN", "clientdesk.local/audit")
CLIENTDESK_AUDIT_PREVIOUS_VKEYS = [
    v for v in os.environ.get("CLIENTDESK_AUDIT_PREVIOUS_VKEYS", "").split(",") if v.strip()
]
AUDIT_CHECKPOINT_INTERVAL_SECONDS = float(
    os.environ.get("CLIENTDESK_AUDIT_CHECKPOINT_INTERVAL_SECONDS", "300")
)
# The client portal: session lifetime, one-time link lifetime, replies a client may post a
# minute, and where the business's portal lives (for links in emails and `portal_link`).
PORTAL_SESSION_MINUTES = float(os.environ.get("CLIENTDESK_PORTAL_SESSION_MINUTES", "15"))
# A session renewed in the background (POST /portal/api/v1/session/refresh) ends this long after
# sign-in at the latest.
PORTAL_SESSION_MAX_HOURS = float(os.environ.get("CLIENTDESK_PORTAL_SESSION_MAX_HOURS", "12"))
# Sign-in links asked for by e-mail on the cabinet's page, per address and per network address,
# in 15 minutes; every answer takes at least PORTAL_LINK_REQUEST_SECONDS, known address or not.
PORTAL_LINK_REQUESTS_PER_ADDRESS = int(
    os.environ.get("CLIENTDESK_PORTAL_LINK_REQUESTS_PER_ADDRESS", "3")
)
PORTAL_LINK_REQUESTS_PER_IP = int(os.environ.get("CLIENTDESK_PORTAL_LINK_REQUESTS_PER_IP", "20"))
PORTAL_LINK_REQUEST_SECONDS = 0.4
# Open event streams: a client's (all its sessions together) and a staff user's, across every
# events process; one more is 429 (docs/PORTAL.md, "Sessions").
PORTAL_STREAMS_PER_CLIENT = int(os.environ.get("CLIENTDESK_PORTAL_STREAMS_PER_CLIENT", "5"))
STAFF_STREAMS_PER_USER = int(os.environ.get("CLIENTDESK_STAFF_STREAMS_PER_USER", "10"))
# A stream's lease counts this long without renewal: the most a process that died keeps its
# streams counted against the caps (renewed a third of that apart while the stream is open).
STREAM_LEASE_SECONDS = float(os.environ.get("CLIENTDESK_STREAM_LEASE_SECONDS", "60"))
# The largest CSV file `POST /api/v1/clients/import` and the Clients page take (streamed, never
# held in memory; 100,000 clients are about 10 MB).
CLIENTS_IMPORT_MAX_BYTES = int(os.environ.get("CLIENTDESK_IMPORT_MAX_MB", "100")) * 1024 * 1024
PORTAL_LINK_MINUTES = 15
PORTAL_REPLIES_PER_MINUTE = int(os.environ.get("CLIENTDESK_PORTAL_REPLIES_PER_MINUTE", "10"))
PORTAL_URL = os.environ.get("CLIENTDESK_PORTAL_URL", "")
# With a portal, emails can notify ("you have a new message") instead of carrying the text.
EMAIL_NOTIFY_ONLY = _env_bool("CLIENTDESK_EMAIL_NOTIFY_ONLY")


def _vapid_subject(value: str) -> str:
    """CLIENTDESK_VAPID_SUBJECT, the contact push services see with every push (RFC 8292):
    a mailto: or https: URL; by default the public https address, else the From address."""
    value = value.strip()
    if not value:
        if PUBLIC_URL.startswith("https://"):
            return PUBLIC_URL
        return f"mailto:{os.environ.get('DEFAULT_FROM_EMAIL', 'messages@clientdesk.localhost')}"
    if not value.startswith(("mailto:", "https://")):
        raise ValueError(f"CLIENTDESK_VAPID_SUBJECT must be a mailto: or https: URL, not {value!r}")
    return value


# Web Push (docs/PORTAL.md): the VAPID private key (unset: generated once into var/), the
# contact sent to push services, whether a push shows the message's text (off: "You have a new
# message from ..."), how long a push service keeps an undelivered push, and after how many
# pushes without a receipt from the device a subscription is reported as probably dead.
VAPID_PRIVATE_KEY = os.environ.get("CLIENTDESK_VAPID_PRIVATE_KEY", "")
VAPID_SUBJECT = _vapid_subject(os.environ.get("CLIENTDESK_VAPID_SUBJECT", ""))
PUSH_INCLUDE_BODY = _env_bool("CLIENTDESK_PUSH_INCLUDE_BODY")
PUSH_TTL_SECONDS = int(os.environ.get("CLIENTDESK_PUSH_TTL", "86400"))
PUSH_DEAD_AFTER = int(os.environ.get("CLIENTDESK_PUSH_DEAD_AFTER", "5"))
# With Redis, live events are announced by pub/sub instead of LISTEN/NOTIFY or datagrams.
REDIS_URL = os.environ.get("REDIS_URL", "")
# Live events older than this are pruned (`prune_live_events`); a stream resuming from an
# older cursor gets a `stream.reset` event and reloads.
LIVE_EVENT_RETENTION_HOURS = int(os.environ.get("CLIENTDESK_LIVE_EVENT_RETENTION_HOURS", "72"))
# /metrics answers only `Authorization: Bearer <this>` when it is set (docs/OPERATIONS.md).
CLIENTDESK_METRICS_TOKEN = os.environ.get("CLIENTDESK_METRICS_TOKEN", "")
# A delivery worker serves its own /metrics on this port (unset: not at all) and address.
CLIENTDESK_WORKER_METRICS_PORT = (
    int(os.environ["CLIENTDESK_WORKER_METRICS_PORT"])
    if os.environ.get("CLIENTDESK_WORKER_METRICS_PORT")
    else None
)
CLIENTDESK_WORKER_METRICS_HOST = os.environ.get("CLIENTDESK_WORKER_METRICS_HOST", "127.0.0.1")

# --- Email ----------------------------------------------------------------------------------


def _email_settings(url: str) -> dict[str, object]:
    """EMAIL_URL such as smtp://user:pass@host:587?tls=1, smtps://... or console://."""
    from urllib.parse import parse_qs, unquote, urlsplit

    if not url or url.startswith("console:"):
        return {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}
    parts = urlsplit(url)
    if parts.scheme not in {"smtp", "smtps"}:
        raise ValueError(f"EMAIL_URL must start with smtp://, smtps:// or console://, not {url!r}")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": parts.hostname or "localhost",
        "EMAIL_PORT": parts.port or (465 if parts.scheme == "smtps" else 25),
        "EMAIL_HOST_USER": unquote(parts.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
        "EMAIL_USE_TLS": query.get("tls") in {"1", "true"},
        "EMAIL_USE_SSL": parts.scheme == "smtps" or query.get("ssl") in {"1", "true"},
        "EMAIL_TIMEOUT": 15,
    }


globals().update(_email_settings(os.environ.get("EMAIL_URL", "")))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "messages@clientdesk.localhost")
# Where a client's answer to an email goes (the From address is often a no-reply one).
EMAIL_REPLY_TO = os.environ.get("CLIENTDESK_EMAIL_REPLY_TO", "")

# One JSON object per line (CLIENTDESK_LOG_FORMAT=json, the default off a terminal) or text.
LOGGING = logging_config(level=os.environ.get("LOG_LEVEL", "INFO"))
