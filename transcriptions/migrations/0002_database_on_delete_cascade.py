from django.db import migrations

from config.migration_operations import SetForeignKeyOnDelete


class Migration(migrations.Migration):
    dependencies = [
        ("transcriptions", "0001_init_schema"),
    ]

    operations = [
        SetForeignKeyOnDelete("jobs", "owner_user_id", references="users", action="CASCADE"),
        SetForeignKeyOnDelete("file_artifacts", "job_id", references="jobs", action="CASCADE"),
    ]
