"""Roll back the most recently applied migration of this project's apps, one step."""

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

PROJECT_APPS = ("accounts", "licenses", "transcriptions")


class Command(BaseCommand):
    help = "Unapply the latest applied migration among the project's apps, and nothing else."

    def handle(self, *args, **options):
        loader = MigrationLoader(connection)
        applied = set(loader.applied_migrations)
        newest_first = (
            MigrationRecorder(connection)
            .migration_qs.filter(app__in=PROJECT_APPS)
            .order_by("-applied", "-id")
            .values_list("app", "name")
        )
        for key in newest_first:
            node = loader.graph.node_map.get(key)
            if node is None:
                continue
            # Only a migration no other applied migration depends on can go alone.
            if any(child.key in applied for child in node.children):
                continue
            app, name = key
            parents = [p.key[1] for p in node.parents if p.key[0] == app]
            target = max(parents) if parents else "zero"
            self.stdout.write(f"rolling back {app}.{name} (to {app} {target})")
            call_command("migrate", app, target, verbosity=options["verbosity"])
            return
        raise CommandError("no project migration can be rolled back on its own")
