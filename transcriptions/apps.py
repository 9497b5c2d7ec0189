from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import pre_delete


class TranscriptionsConfig(AppConfig):
    name = "transcriptions"
    verbose_name = "Transcriptions"

    def ready(self) -> None:
        # Storage housekeeping, not business logic: however a user is deleted
        # (admin, shell, a future endpoint), their jobs' files go with the rows.
        pre_delete.connect(
            _delete_files_of_deleted_user, sender=settings.AUTH_USER_MODEL, dispatch_uid="job-files-of-deleted-user"
        )


def _delete_files_of_deleted_user(sender, instance, **kwargs) -> None:
    from . import services

    services.delete_files_of_owner(instance)
