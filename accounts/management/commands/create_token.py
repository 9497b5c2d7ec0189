"""Print a new API token for a user, for operators."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from knox.models import AuthToken

from accounts.services import get_user_by_email


class Command(BaseCommand):
    help = "Create an API token for the user with this email and print it."

    def add_arguments(self, parser):
        parser.add_argument("email")

    def handle(self, *args, email: str, **options):
        user = get_user_by_email(email)
        if user is None:
            raise CommandError(f"no user with email {email!r}")
        if not user.is_active:
            raise CommandError(f"user {email} is inactive")
        instance, token = AuthToken.objects.create(user=user, expiry=settings.REST_KNOX["TOKEN_TTL"])
        self.stdout.write(token)
        self.stderr.write(f"expires at {instance.expiry.isoformat()}")
