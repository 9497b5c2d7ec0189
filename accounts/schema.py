"""OpenAPI description of the bearer-token scheme (read by drf-spectacular)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.BearerTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A token from POST /api/auth/token, sent as `Authorization: Bearer <token>`.",
        }
