"""Account services: create and look up users."""

import uuid

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from .models import Role, User, normalize_email_address


def create_user(email: str, password: str, role: str = Role.USER) -> User:
    """Create a user with a hashed password; raise ValueError on bad input or a taken email."""
    email = normalize_email_address(email)
    try:
        validate_email(email)
    except ValidationError:
        raise ValueError(f"invalid email address: {email!r}") from None
    if role not in Role.values:
        raise ValueError(f"invalid role {role!r}; expected one of {', '.join(Role.values)}")
    if not isinstance(password, str) or not password:
        raise ValueError("password is required")
    if get_user_by_email(email) is not None:
        raise ValueError(f"a user with email {email} already exists")
    try:
        with transaction.atomic():
            return User.objects.create_user(email=email, password=password, role=role)
    except IntegrityError:
        raise ValueError(f"a user with email {email} already exists") from None


def set_user_password(user: User, password: str) -> None:
    """Set and save a new password, checked against the password validators."""
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ValueError(" ".join(exc.messages)) from None
    user.set_password(password)
    user.save(update_fields=["password"])


def get_user_by_email(email: str) -> User | None:
    """Return the user with this email (any letter case), or None."""
    if not isinstance(email, str) or not email.strip():
        return None
    return User.objects.filter(email=normalize_email_address(email)).first()


def get_user_by_id(user_id: uuid.UUID | str) -> User | None:
    """Return the user with this id, or None (also for a malformed id)."""
    try:
        pk = user_id if isinstance(user_id, uuid.UUID) else uuid.UUID(str(user_id))
    except (ValueError, TypeError, AttributeError):
        return None
    return User.objects.filter(pk=pk).first()
