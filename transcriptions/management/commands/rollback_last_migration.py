"""Roll back the most recently applied migration of this project's apps, one step."""

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.migrations.loader import MigrationLoader

PROJECT_APPS = ("accounts", "licenses", "transcriptions")


class Command(BaseCommand):
    help = "Unapply the latest applied migration among the project's apps."

    def handle(self, *args, **options):
        loader = MigrationLoader(connection)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT app, name FROM django_migrations WHERE app IN %s ORDER BY applied DESC, id DESC",
                [PROJECT_APPS],
            )
            applied = cursor.fetchall()
        if not applied:
            raise CommandError("no project migration is applied")
        # The newest one that no other applied migration depends on can be undone alone.
        app, name = applied[0]
        parents = [p for p in loader.graph.node_map[(app, name)].parents if p.key[0] == app]
        target = parents[0].key[1] if parents else "zero"
        self.stdout.write(f"rolling back {app}.{name} (to {app} {target})")
        call_command("migrate", app, target, verbosity=options["verbosity"])
