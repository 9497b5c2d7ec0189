"""WSGI entry point (gunicorn config.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()

# Embedded mode (no REDIS_URL) has no celery beat: the serving process sweeps.
from transcriptions.dispatch import start_local_sweeper  # noqa: E402 - needs the app loaded

start_local_sweeper()
