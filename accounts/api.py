"""Token endpoint: exchange email and password for a bearer token, or revoke one."""

from django.conf import settings
from django.contrib.auth import authenticate
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from knox.models import AuthToken
from rest_framework import serializers, status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from config.schema import errors

from .throttles import LoginEmailThrottle, LoginIPThrottle

INVALID_CREDENTIALS = "invalid email or password"


class TokenIn(serializers.Serializer):
    email = serializers.CharField(max_length=254)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class TokenOut(serializers.Serializer):
    token = serializers.CharField()
    expires_at = serializers.DateTimeField()


class TokenView(APIView):
    """POST issues a token for valid credentials; DELETE revokes the token presented."""

    throttle_classes = [LoginIPThrottle, LoginEmailThrottle]

    def get_permissions(self):
        return [AllowAny()] if self.request.method == "POST" else [IsAuthenticated()]

    def get_authenticate_header(self, request) -> str:
        # Failed logins are 401 with a Bearer challenge, even though POST uses no authenticator.
        return "Bearer"

    def get_authenticators(self):
        # Credentials, not a token, authenticate a login; a stale header must not block it.
        return [] if getattr(self.request, "method", None) == "POST" else super().get_authenticators()

    @extend_schema(
        request=TokenIn,
        responses={200: TokenOut, **errors(400, 401, 429)},
        auth=[],
        parameters=[
            OpenApiParameter(
                "Retry-After", OpenApiTypes.INT, OpenApiParameter.HEADER, response=[429],
                description="Seconds until another attempt is allowed.",
            )
        ],
        summary="Obtain a bearer token",
    )
    def post(self, request):
        data = TokenIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(request, email=data.validated_data["email"], password=data.validated_data["password"])
        if user is None or not user.is_active:
            raise AuthenticationFailed(INVALID_CREDENTIALS)
        instance, token = AuthToken.objects.create(user=user, expiry=settings.REST_KNOX["TOKEN_TTL"])
        return Response(TokenOut({"token": token, "expires_at": instance.expiry}).data)

    @extend_schema(
        request=None,
        responses={204: OpenApiResponse(description="Token revoked."), **errors(401)},
        summary="Revoke the token presented",
    )
    def delete(self, request):
        request.auth.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
