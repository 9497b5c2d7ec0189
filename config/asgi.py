"""ASGI entry point."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_asgi_application()

# Embedded mode (no REDIS_URL) has no celery beat: the serving process sweeps.
from transcriptions.dispatch import start_local_sweeper  # noqa: E402 - needs the app loaded

start_local_sweeper()
