# Transcription service: common tasks. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Embedded defaults for local use; a DATABASE_URL or REDIS_URL in the environment wins.
export DATABASE_URL ?= sqlite:///$(CURDIR)/var/db.sqlite3
export DJANGO_DEBUG ?= 1
HOST ?= 127.0.0.1
PORT ?= 8000
m ?=

.PHONY: install run test test-fast db-rev db-up db-dn db-seed lint worker beat bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed  ## create the virtualenv and install pinned requirements

var:
	mkdir -p var/media

run: install var db-up db-seed  ## migrate, seed and serve on http://127.0.0.1:8000
	$(PY) manage.py runserver $(HOST):$(PORT)

test: install var  ## run the test suite (Postgres if DATABASE_URL points at it, else SQLite)
	$(PY) -m pytest

db-rev: install  ## make migrations: make db-rev m="add x"
	$(PY) manage.py makemigrations $(if $(m),--name "$(subst $() ,_,$(m))",)

db-up: install var  ## apply migrations
	$(PY) manage.py migrate --noinput

db-dn: install  ## roll back the most recently applied project migration (one step)
	$(PY) manage.py rollback_last_migration

db-seed: install var  ## seed demo users, license and jobs (idempotent)
	$(PY) manage.py seed_demo

lint: install  ## static checks
	$(VENV)/bin/ruff check .
	$(PY) manage.py makemigrations --check --dry-run

worker: install  ## a Celery worker (needs REDIS_URL)
	$(VENV)/bin/celery -A config worker --loglevel=INFO --concurrency=$${WORKER_CONCURRENCY:-1}

beat: install  ## the schedule of the recovery sweep (needs REDIS_URL; run one per deployment)
	$(VENV)/bin/celery -A config beat --loglevel=INFO --schedule=var/celerybeat-schedule

bench: install  ## benchmarks; writes BENCHMARKS.md
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) var .pytest_cache
