"""Users: email is the login, and a role decides who may use the admin."""

import uuid

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


def normalize_email_address(email: str) -> str:
    """Return the canonical form of an email address: trimmed and lowercased."""
    return (email or "").strip().lower()


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    USER = "user", "User"


class UserManager(BaseUserManager):
    """Manager that creates users with a normalised email and a hashed password."""

    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, role: str = Role.USER, **extra):
        email = normalize_email_address(email)
        if not email:
            raise ValueError("email is required")
        user = self.model(email=email, role=role, **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra):
        return self.create_user(email, password, role=Role.ADMIN, **extra)

    def get_by_natural_key(self, username: str):
        return self.get(email__iexact=normalize_email_address(username))


class User(AbstractBaseUser):
    """An account of the service: an API client, an operator, or both."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(max_length=254, unique=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.USER)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        db_table = "users"
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(Lower("email"), name="users_email_ci_unique"),
            models.CheckConstraint(
                condition=models.Q(role__in=[r.value for r in Role]),
                name="users_role_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.email

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email} role={self.role}>"

    def save(self, *args, **kwargs) -> None:
        # The case-insensitive unique constraint needs one canonical spelling.
        self.email = normalize_email_address(self.email)
        super().save(*args, **kwargs)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    # The Django admin asks these three; only active admins get in, with all rights.
    @property
    def is_staff(self) -> bool:
        return self.is_active and self.is_admin

    @property
    def is_superuser(self) -> bool:
        return self.is_staff

    def has_perm(self, perm: str, obj=None) -> bool:
        return self.is_staff

    def has_perms(self, perm_list, obj=None) -> bool:
        return self.is_staff

    def has_module_perms(self, app_label: str) -> bool:
        return self.is_staff
