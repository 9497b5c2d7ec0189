"""License services: create or update, assign, revoke, and find the active one."""

from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import User

from .features import validate_features
from .models import License

MAX_KEY_LENGTH = License._meta.get_field("key").max_length


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key.strip():
        raise ValueError("license key is required")
    key = key.strip()
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"license key is longer than {MAX_KEY_LENGTH} characters")
    return key


def upsert_license(
    key: str,
    plan: str,
    features: dict[str, Any] | None,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    is_revoked: bool = False,
) -> License:
    """Create the license with this key, or update it in place; return it."""
    key = _check_key(key)
    if not isinstance(plan, str) or not plan.strip():
        raise ValueError("plan is required")
    features = validate_features(features)
    valid_from = valid_from or timezone.now()
    if valid_until is not None and valid_until <= valid_from:
        raise ValueError("valid_until must be after valid_from")
    with transaction.atomic():
        license_, _ = License.objects.update_or_create(
            key=key,
            defaults={
                "plan": plan.strip(),
                "features": features,
                "valid_from": valid_from,
                "valid_until": valid_until,
                "is_revoked": bool(is_revoked),
            },
        )
    return license_


def get_license_by_key(key: str) -> License | None:
    """Return the license with this key, or None."""
    if not isinstance(key, str) or not key.strip():
        return None
    return License.objects.select_related("assigned_to_user").filter(key=key.strip()).first()


def assign_license_to_user(key: str, user: User) -> License:
    """Assign the license to the user; raise ValueError if either does not exist."""
    if user is None or user.pk is None:
        raise ValueError("user is required")
    with transaction.atomic():
        license_ = License.objects.select_for_update().filter(key=_check_key(key)).first()
        if license_ is None:
            raise ValueError(f"no license with key {key!r}")
        license_.assigned_to_user = user
        license_.save(update_fields=["assigned_to_user"])
    return license_


def revoke_licenses(keys: list[str]) -> int:
    """Revoke the licenses with these keys; return how many changed."""
    return License.objects.filter(key__in=keys, is_revoked=False).update(is_revoked=True)


def active_license_for(user: User) -> License | None:
    """Return the user's usable license (the one valid longest if several), or None."""
    if user is None or getattr(user, "pk", None) is None:
        return None
    return (
        License.objects.active()
        .filter(assigned_to_user=user)
        .order_by(F("valid_until").desc(nulls_first=True), "-created_at")
        .first()
    )
