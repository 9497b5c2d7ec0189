"""Admin for licenses: search by key or user, filter by plan and state, revoke in bulk."""

from django.contrib import admin, messages

from . import services
from .models import License


class ActiveFilter(admin.SimpleListFilter):
    title = "active"
    parameter_name = "active"

    def lookups(self, request, model_admin):
        return (("yes", "Yes"), ("no", "No"))

    def queryset(self, request, queryset):
        active = License.objects.active().values("pk")
        if self.value() == "yes":
            return queryset.filter(pk__in=active)
        if self.value() == "no":
            return queryset.exclude(pk__in=active)
        return queryset


@admin.register(License)
class LicenseAdmin(admin.ModelAdmin):
    list_display = ("key", "plan", "assigned_to_user", "active", "is_revoked", "valid_from", "valid_until")
    list_filter = ("plan", "is_revoked", ActiveFilter)
    search_fields = ("key", "assigned_to_user__email")
    list_select_related = ("assigned_to_user",)
    autocomplete_fields = ("assigned_to_user",)
    readonly_fields = ("created_at",)
    actions = ("revoke_selected",)

    @admin.display(boolean=True, description="active")
    def active(self, obj: License) -> bool:
        return obj.is_active()

    @admin.action(description="Revoke selected licenses")
    def revoke_selected(self, request, queryset):
        count = services.revoke_licenses(list(queryset.values_list("key", flat=True)))
        self.message_user(request, f"Revoked {count} license(s).", messages.SUCCESS)
