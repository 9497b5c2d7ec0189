"""Admin for jobs, with their artifacts inline; actions go through the services."""

from django.contrib import admin, messages

from . import services
from .models import FileArtifact, Job


class FileArtifactInline(admin.TabularInline):
    model = FileArtifact
    extra = 0
    can_delete = False
    fields = ("type", "path", "size_bytes", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = (
        "id", "owner", "status", "model_name", "mode", "language", "progress",
        "audio_duration_ms", "processing_time_ms", "created_at",
    )
    list_filter = ("status", "model_name", "mode")
    search_fields = ("=id", "owner__email")
    list_select_related = ("owner",)
    autocomplete_fields = ("owner",)
    readonly_fields = (
        "id", "status", "progress", "attempts", "audio_duration_ms", "processing_time_ms",
        "result_json_path", "transcript_txt_path", "error_message", "created_at", "updated_at",
    )
    inlines = (FileArtifactInline,)
    actions = ("requeue_failed",)
    date_hierarchy = "created_at"
    show_full_result_count = False

    def get_search_results(self, request, queryset, search_term):
        # An id search on a malformed UUID would raise; match nothing by id instead.
        term = search_term.strip()
        if term and services.get_job_by_id(term) is None and "@" not in term:
            return queryset.filter(owner__email__icontains=term), False
        return super().get_search_results(request, queryset, search_term)

    @admin.action(description="Requeue selected failed jobs")
    def requeue_failed(self, request, queryset):
        selected = list(queryset.values_list("pk", flat=True))
        count = services.requeue_failed_jobs(selected)
        skipped = len(selected) - count
        self.message_user(request, f"Requeued {count} failed job(s).", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"Skipped {skipped} job(s) that were not failed.", messages.WARNING)

    def delete_model(self, request, obj):
        services.delete_jobs([obj])

    def delete_queryset(self, request, queryset):
        services.delete_jobs(list(queryset))


@admin.register(FileArtifact)
class FileArtifactAdmin(admin.ModelAdmin):
    list_display = ("id", "job", "type", "path", "size_bytes", "created_at")
    list_filter = ("type",)
    search_fields = ("path",)
    list_select_related = ("job",)
    raw_id_fields = ("job",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
