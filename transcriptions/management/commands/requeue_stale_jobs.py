"""Run the recovery sweep once: the same work celery beat schedules, for cron or an operator.

It requeues jobs whose worker died, fails those out of attempts, and
re-publishes queued jobs whose queue message was lost (see
`transcriptions.services.requeue_stale_jobs`).
"""

from django.core.management.base import BaseCommand

from transcriptions import services


class Command(BaseCommand):
    help = "Requeue jobs left processing by a dead worker and re-publish queued jobs with no message."

    def handle(self, *args, **options):
        result = services.requeue_stale_jobs()
        self.stdout.write(
            f"requeued {len(result.requeued)}, failed {len(result.failed)}, re-enqueued {len(result.reenqueued)}"
        )
