"""URL routes: the admin, the API, its schema and docs."""

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from accounts.api import TokenView
from transcriptions.views import JobViewSet, ModelListView

from . import health


class OptionalSlashRouter(SimpleRouter):
    """A router whose routes match with or without a trailing slash, without redirecting."""

    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("transcriptions", JobViewSet, basename="transcription")

api_patterns = [
    re_path(r"^health/?$", health.HealthView.as_view(), name="health"),
    re_path(r"^ready/?$", health.ReadyView.as_view(), name="ready"),
    re_path(r"^auth/token/?$", TokenView.as_view(), name="auth-token"),
    re_path(r"^models/?$", ModelListView.as_view(), name="models"),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("", include(router.urls)),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include(api_patterns)),
]
urlpatterns += [path("bench/", include("config.bench_urls"))]  # routes only when BENCH_VIEWS=1 (make bench)
