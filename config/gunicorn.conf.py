"""gunicorn settings: `gunicorn -c config/gunicorn.conf.py config.wsgi`."""

import gc
import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# The classic (2 x cores) + 1 sync workers: requests are short, database-bound calls.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
worker_class = "sync"
# Uploads of up to MAX_UPLOAD_MB on slow links need time; the rest is quick.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
# Recycle a worker now and then as a guard against slow leaks. Each restart
# re-imports the app (about 0.5 s of CPU), so not too often: at 2,000 the
# benchmark's workers restarted every few seconds under load.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "20000"))
max_requests_jitter = max_requests // 10
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def post_worker_init(worker):
    """Exclude everything loaded at start-up from garbage collection.

    Django, DRF and their imports are long-lived; without this, full
    collections re-scan them and stall requests by tens of milliseconds
    (measured in BENCHMARKS.md).
    """
    gc.collect()
    gc.freeze()
