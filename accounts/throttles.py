"""Throttles for the token endpoint: guesses are limited per client IP and per email."""

import hashlib

from rest_framework.throttling import SimpleRateThrottle

from .models import normalize_email_address


class LoginIPThrottle(SimpleRateThrottle):
    scope = "login_ip"

    def get_cache_key(self, request, view):
        if request.method != "POST":
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class LoginEmailThrottle(SimpleRateThrottle):
    scope = "login_email"

    def get_cache_key(self, request, view):
        if request.method != "POST":
            return None
        email = request.data.get("email") if hasattr(request.data, "get") else None
        if not isinstance(email, str) or not email.strip():
            return None
        # Hashed: a fixed-length cache key whatever the client sends.
        digest = hashlib.sha256(normalize_email_address(email).encode()).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": digest}
