"""Bearer-token authentication: knox, hardened against malformed tokens."""

import re

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
