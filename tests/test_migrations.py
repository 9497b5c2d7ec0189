"""Migrations: each app unapplies and reapplies, the ON DELETE actions follow, nothing is missing.

Tests here change the schema, so they are transactional and every one of them
leaves the database fully migrated again (see `_fully_migrated_afterwards`).
"""

import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder

PROJECT_APPS = ("accounts", "licenses", "transcriptions")
APP_TABLES = {"accounts": {"users"}, "licenses": {"licenses"}, "transcriptions": {"jobs", "file_artifacts"}}


def _executor() -> MigrationExecutor:
    return MigrationExecutor(connection)


def _unapplied_migrations() -> list[tuple[str, str]]:
    """Return the migrations a plain `migrate` would still apply."""
    executor = _executor()
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [(migration.app_label, migration.name) for migration, _backwards in plan]


def _applied() -> set[tuple[str, str]]:
    return set(MigrationRecorder(connection).applied_migrations())


def _tables() -> set[str]:
    return set(connection.introspection.table_names())


@pytest.fixture
def _fully_migrated_afterwards():
    """Check the schema is fully migrated before the test, and make it so again after."""
    assert _unapplied_migrations() == []
    yield
    call_command("migrate", verbosity=0)
    assert _unapplied_migrations() == []


migration_test = pytest.mark.usefixtures("_fully_migrated_afterwards")


# --- Zero and back --------------------------------------------------------------------------------


@migration_test
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("app", PROJECT_APPS)
def test_app_migrates_to_zero_and_forward_again(app):
    call_command("migrate", app, "zero", verbosity=0)

    assert not {key for key in _applied() if key[0] == app}
    assert not APP_TABLES[app] & _tables()

    call_command("migrate", verbosity=0)

    assert _unapplied_migrations() == []
    assert APP_TABLES[app] <= _tables()


# --- ON DELETE actions in PostgreSQL ---------------------------------------------------------------

_ON_DELETE = """
SELECT con.confdeltype, con.condeferrable, con.condeferred
FROM pg_constraint con
JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = ANY (con.conkey)
WHERE con.contype = 'f' AND con.conrelid = %s::regclass AND att.attname = %s
"""
CASCADE, SET_NULL, NO_ACTION = "c", "n", "a"


def _on_delete(table: str, column: str) -> tuple[str, bool, bool]:
    """Return (action code, deferrable, initially deferred) of the foreign key on table.column."""
    with connection.cursor() as cursor:
        cursor.execute(_ON_DELETE, [table, column])
        (row,) = cursor.fetchall()
    return row


@migration_test
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_transcriptions_0002_adds_and_removes_the_cascades():
    assert _on_delete("jobs", "owner_user_id") == (CASCADE, True, True)
    assert _on_delete("file_artifacts", "job_id") == (CASCADE, True, True)

    call_command("migrate", "transcriptions", "0001", verbosity=0)

    assert _on_delete("jobs", "owner_user_id") == (NO_ACTION, True, True)
    assert _on_delete("file_artifacts", "job_id") == (NO_ACTION, True, True)

    call_command("migrate", "transcriptions", "0002", verbosity=0)

    assert _on_delete("jobs", "owner_user_id") == (CASCADE, True, True)
    assert _on_delete("file_artifacts", "job_id") == (CASCADE, True, True)


@migration_test
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_licenses_0002_adds_and_removes_the_set_null():
    assert _on_delete("licenses", "assigned_to_user_id") == (SET_NULL, True, True)

    call_command("migrate", "licenses", "0001", verbosity=0)

    assert _on_delete("licenses", "assigned_to_user_id") == (NO_ACTION, True, True)

    call_command("migrate", "licenses", "0002", verbosity=0)

    assert _on_delete("licenses", "assigned_to_user_id") == (SET_NULL, True, True)


@pytest.mark.postgres
@pytest.mark.django_db
def test_on_delete_migrations_print_their_sql():
    out = io.StringIO()

    call_command("sqlmigrate", "transcriptions", "0002", stdout=out)

    sql = out.getvalue()
    assert 'REFERENCES "users" (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED' in sql
    assert 'REFERENCES "jobs" (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED' in sql


# --- The models and the migrations agree ----------------------------------------------------------


@pytest.mark.django_db
def test_makemigrations_finds_no_changes():
    out = io.StringIO()

    call_command("makemigrations", "--check", "--dry-run", stdout=out)  # SystemExit(1) on changes

    assert out.getvalue().strip() == "No changes detected"


# --- rollback_last_migration -------------------------------------------------------------------------


def _newest_project_migration() -> tuple[str, str]:
    recorder = MigrationRecorder(connection)
    newest = recorder.migration_qs.filter(app__in=PROJECT_APPS).order_by("-applied", "-id").first()
    return newest.app, newest.name


@migration_test
@pytest.mark.django_db(transaction=True)
def test_rollback_last_migration_unapplies_exactly_the_newest_project_migration():
    newest = _newest_project_migration()
    before = _applied()
    out = io.StringIO()

    call_command("rollback_last_migration", stdout=out)

    assert before - _applied() == {newest}
    assert _applied() - before == set()
    assert out.getvalue().startswith(f"rolling back {newest[0]}.{newest[1]} (to {newest[0]} ")


@migration_test
@pytest.mark.django_db(transaction=True)
def test_rollback_last_migration_twice_unapplies_two_migrations():
    before = _applied()

    call_command("rollback_last_migration", stdout=io.StringIO())
    call_command("rollback_last_migration", stdout=io.StringIO())

    rolled_back = before - _applied()
    assert len(rolled_back) == 2
    assert {app for app, _name in rolled_back} <= set(PROJECT_APPS)


# --- Indexes ---------------------------------------------------------------------------------------


def _job_indexes() -> dict[str, list[str]]:
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, "jobs")
    return {name: info["columns"] for name, info in found.items() if info["index"] and not info["primary_key"]}


@migration_test
@pytest.mark.django_db(transaction=True)
def test_transcriptions_0005_swaps_the_owner_index_for_owner_and_status_and_back():
    assert _job_indexes()["jobs_owner_status_idx"] == ["owner_user_id", "status"]
    assert "jobs_owner_idx" not in _job_indexes()

    call_command("migrate", "transcriptions", "0004", verbosity=0)

    assert _job_indexes()["jobs_owner_idx"] == ["owner_user_id"]
    assert "jobs_owner_status_idx" not in _job_indexes()
