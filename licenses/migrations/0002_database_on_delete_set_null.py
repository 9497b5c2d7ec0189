from django.db import migrations

from config.migration_operations import SetForeignKeyOnDelete


class Migration(migrations.Migration):
    dependencies = [
        ("licenses", "0001_init_schema"),
    ]

    operations = [
        SetForeignKeyOnDelete("licenses", "assigned_to_user_id", references="users", action="SET NULL"),
    ]
