"""Licenses: a plan with feature limits, assigned to at most one user."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .features import validate_features


class LicenseQuerySet(models.QuerySet):
    def active(self, at=None):
        """Licenses usable now: not revoked and inside their validity window."""
        at = at or timezone.now()
        return self.filter(is_revoked=False, valid_from__lte=at).filter(
            Q(valid_until__isnull=True) | Q(valid_until__gt=at)
        )


class License(models.Model):
    """A license key granting a plan and its features to the assigned user."""

    key = models.CharField(max_length=64, primary_key=True)
    assigned_to_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_column="assigned_to_user_id",
        related_name="licenses",
        db_index=False,  # licenses_user_revoked_idx starts with this column
    )
    plan = models.CharField(max_length=64)
    features = models.JSONField(default=dict, blank=True)
    valid_from = models.DateTimeField(default=timezone.now)
    valid_until = models.DateTimeField(null=True, blank=True)
    is_revoked = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = LicenseQuerySet.as_manager()

    class Meta:
        db_table = "licenses"
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(valid_until__isnull=True) | Q(valid_until__gt=models.F("valid_from")),
                name="licenses_valid_until_after_valid_from",
            ),
        ]
        indexes = [models.Index(fields=["assigned_to_user", "is_revoked"], name="licenses_user_revoked_idx")]

    def __str__(self) -> str:
        return f"{self.key} ({self.plan})"

    def __repr__(self) -> str:
        return f"<License {self.key} plan={self.plan} user={self.assigned_to_user_id}>"

    def clean(self) -> None:
        try:
            validate_features(self.features)
        except ValueError as exc:
            raise ValidationError({"features": str(exc)}) from None
        if self.valid_until and self.valid_from and self.valid_until <= self.valid_from:
            raise ValidationError({"valid_until": "valid_until must be after valid_from"})

    def is_active(self, at=None) -> bool:
        """Return whether the license is usable at the given moment (default now)."""
        at = at or timezone.now()
        return (
            not self.is_revoked
            and self.valid_from <= at
            and (self.valid_until is None or self.valid_until > at)
        )
