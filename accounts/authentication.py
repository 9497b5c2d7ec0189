"""Bearer-token authentication: knox, hardened against malformed tokens."""

import re

from django.utils import timezone
from knox.auth import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

# knox tokens are lowercase hex (32 random bytes, optional prefix aside).
_TOKEN_SHAPE = re.compile(rb"[0-9a-f]{16,128}")


class BearerTokenAuthentication(TokenAuthentication):
    """knox's hashed, expiring tokens; a token of the wrong shape is a 401, never a 400."""

    def authenticate_credentials(self, token: bytes):
        # Undecodable bytes or a NUL would otherwise surface as a database or codec error.
        if not _TOKEN_SHAPE.fullmatch(token):
            raise AuthenticationFailed("Invalid token.")
        return super().authenticate_credentials(token)

    def _cleanup_token(self, auth_token) -> bool:
        # knox also loads every other token of the user here, on every request;
        # expired tokens are purged in bulk by a scheduled task instead.
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            auth_token.delete()
            return True
        return False
