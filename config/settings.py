"""Django settings, read once from the environment.

Every deployment knob is an environment variable (see README.md). Required
values fail fast with ImproperlyConfigured instead of falling back to an
unsafe default.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is required when DJANGO_DEBUG is off; "
            "set it to a long random string."
        )
    SECRET_KEY = "insecure-development-key-only-used-with-debug-on"

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "licenses",
    "transcriptions",
]

MIDDLEWARE = [
    # First, so that errors raised by any other middleware under /api/ become JSON too.
    "config.middleware.ApiErrorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------
if not env.str("DATABASE_URL", default="").strip():
    raise ImproperlyConfigured(
        "DATABASE_URL is required, e.g. "
        "DATABASE_URL=postgres://postgres@127.0.0.1:5432/transcribe "
        "or DATABASE_URL=sqlite:///var/db.sqlite3"
    )
_database = env.db_url("DATABASE_URL")
if _database["ENGINE"] == "django.db.backends.postgresql":
    # Persistent connections with a liveness check before reuse; a short
    # connect timeout so a dead database host fails requests quickly.
    _database["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    _database["CONN_HEALTH_CHECKS"] = True
    _database.setdefault("OPTIONS", {})
    _database["OPTIONS"].setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=2))
elif _database["ENGINE"] == "django.db.backends.sqlite3":
    _database.setdefault("OPTIONS", {})
    # Concurrent readers and the in-process task runner share one file.
    _database["OPTIONS"].setdefault("timeout", 20)
    _database["OPTIONS"].setdefault("init_command", "PRAGMA journal_mode=WAL;")
    # Take the write lock when a transaction starts: a read-then-write
    # transaction would otherwise fail at once with "database is locked".
    _database["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")
    # The test database is a file beside this one, not Django's in-memory
    # default: that one shares a cache between threads, and its table locks
    # fail at once where a file's locks wait (the timeout above).
    _name = Path(str(_database["NAME"]))
    if _database["NAME"] not in ("", ":memory:") and not str(_database["NAME"]).startswith("file:"):
        _database.setdefault("TEST", {}).setdefault("NAME", str(_name.with_name(f"test_{_name.name}")))
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and Redis ------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "SOCKET_TIMEOUT": 0.5,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth -------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
TOKEN_TTL_DAYS = env.int("TOKEN_TTL_DAYS", default=30)

# --- I18N / time --------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static and media files ---------------------------------------------------
STATIC_URL = "static/"
# Optional: WhiteNoise serves the apps' static files straight from their folders;
# set STATIC_ROOT only to run collectstatic (for a CDN or a front proxy).
STATIC_ROOT = env.str("STATIC_ROOT", default="") or None
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
MEDIA_ROOT = env.str("MEDIA_ROOT", default=str(BASE_DIR / "var" / "media"))
MEDIA_URL = "media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Served by WhiteNoise (Swagger UI and the admin work without a separate file server).
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MAX_UPLOAD_MB = env.int("MAX_UPLOAD_MB", default=100)
# Uploads above this size spill to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- Security (production defaults; relaxed only in debug mode) ---------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^api/health$", r"^api/ready$"]
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- REST framework --------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.exceptions.api_exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "login_ip": env.str("THROTTLE_LOGIN_IP", default="20/min"),
        "login_email": env.str("THROTTLE_LOGIN_EMAIL", default="10/min"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Proxies in front of the app: throttles trust only that many X-Forwarded-For entries.
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append(
        "rest_framework.renderers.BrowsableAPIRenderer"
    )

REST_KNOX = {
    "AUTH_HEADER_PREFIX": "Bearer",
    "TOKEN_TTL": timedelta(days=TOKEN_TTL_DAYS),
    "AUTO_REFRESH": False,
    "TOKEN_LIMIT_PER_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Transcription service API",
    "DESCRIPTION": "Upload audio, poll the job, download transcripts (txt, json, srt, vtt).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["config.schema.strip_optional_slash"],
}

# --- Transcription --------------------------------------------------------------------
DEFAULT_MODEL_NAME = env.str("DEFAULT_MODEL_NAME", default="tiny.en")
WHISPER_MODELS_DIR = env.str("WHISPER_MODELS_DIR", default="") or None
WHISPER_DEVICE = env.str("WHISPER_DEVICE", default="auto")
WHISPER_COMPUTE_TYPE = env.str("WHISPER_COMPUTE_TYPE", default="auto")
WHISPER_CPU_THREADS = env.int("WHISPER_CPU_THREADS", default=0)
# A job still 'processing' this long after its last heartbeat is presumed dead.
JOB_STALE_AFTER_SECONDS = env.int("JOB_STALE_AFTER_SECONDS", default=600)
# A running job's worker touches it this often (and at least three times per stale period).
JOB_HEARTBEAT_SECONDS = env.int("JOB_HEARTBEAT_SECONDS", default=30)
# A 'queued' job untouched this long is presumed to have lost its message.
JOB_QUEUED_STALE_AFTER_SECONDS = env.int("JOB_QUEUED_STALE_AFTER_SECONDS", default=300)
# A queued job with no published message is left alone this long: its on_commit publish may be under way.
JOB_PUBLISH_GRACE_SECONDS = env.int("JOB_PUBLISH_GRACE_SECONDS", default=10)
JOB_MAX_ATTEMPTS = env.int("JOB_MAX_ATTEMPTS", default=3)
REQUEUE_SWEEP_SECONDS = env.int("REQUEUE_SWEEP_SECONDS", default=60)

# --- Celery ---------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Longest audio a license may allow, times a generous real-time factor, so that
# a long job is never redelivered to a second worker while the first runs it.
MAX_JOB_SECONDS = env.int("MAX_JOB_SECONDS", default=4 * 3600)
# Per-job limits: a fixed allowance for loading plus a multiple of the audio length.
JOB_TIME_LIMIT_BASE_SECONDS = env.int("JOB_TIME_LIMIT_BASE_SECONDS", default=120)
JOB_TIME_LIMIT_FACTOR = env.float("JOB_TIME_LIMIT_FACTOR", default=4.0)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=MAX_JOB_SECONDS + 3600),
    # How often workers return messages whose visibility timeout passed to the queue
    # (kombu's defaults: a scan about every 10 x 10 s).
    "unacked_restore_interval": env.int("CELERY_UNACKED_RESTORE_INTERVAL", default=10),
    "unacked_restore_throttle": env.int("CELERY_UNACKED_RESTORE_THROTTLE", default=10),
    "socket_connect_timeout": 1,
    "socket_timeout": 5,
    "max_retries": 0,
}
CELERY_BEAT_SCHEDULE = {
    "requeue-stale-jobs": {
        "task": "transcriptions.tasks.requeue_stale_jobs",
        "schedule": float(REQUEUE_SWEEP_SECONDS),
    },
    "purge-expired-tokens": {"task": "accounts.tasks.purge_expired_tokens", "schedule": 3600.0},
}

# --- Misc ----------------------------------------------------------------------
APP_VERSION = env.str("GIT_SHA", default="") or env.str("APP_VERSION", default="") or "dev"

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "line": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "line"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "django.db.backends": {"level": "INFO"},
        "faster_whisper": {"level": "WARNING"},
    },
}
