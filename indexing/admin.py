"""Django admin: documents, jobs, chunks and records, each linked to the others and to task results."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from indexing import access, pipeline
from indexing.models import (
    ACTIVE_STATUSES,
    ApiKey,
    Backfill,
    Chunk,
    Document,
    Job,
    Record,
    Scope,
    Source,
    Status,
)
from indexing.pipeline import backfills


def _link(viewname: str, pk, text) -> str:
    return format_html('<a href="{}">{}</a>', reverse(viewname, args=[pk]), text)


def _changelist(model: str, query: str, text) -> str:
    return format_html('<a href="{}?{}">{}</a>', reverse(f"admin:indexing_{model}_changelist"), query, text)


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "format", "size", "live_job_link", "created_at")
    list_filter = ("format", "created_at")
    search_fields = ("name", "sha256", "title")
    readonly_fields = (
        "size",
        "sha256",
        "file",
        "live_job_link",
        "jobs_link",
        "records_link",
        "created_at",
        "updated_at",
    )
    fields = ("name", "title", "format", "encoding", *readonly_fields)
    actions = ["reindex", "backfill"]

    # Deleting goes through the pipeline: the records leave the index (FTS5 rows are not a
    # cascade) and the live version leaves search's statistics.
    def delete_model(self, request, obj: Document) -> None:
        pipeline.delete_document(obj.pk)

    def delete_queryset(self, request, queryset) -> None:
        for document_id in queryset.values_list("pk", flat=True):
            pipeline.delete_document(document_id)

    @admin.display(description="live job")
    def live_job_link(self, document: Document):
        return (
            _link("admin:indexing_job_change", document.live_job_id, f"#{document.live_job_id}")
            if document.live_job_id
            else "—"
        )

    @admin.display(description="jobs")
    def jobs_link(self, document: Document):
        return _changelist("job", f"document__id__exact={document.pk}", f"{document.jobs.count()} job(s)")

    @admin.display(description="records")
    def records_link(self, document: Document):
        if not document.live_job_id:
            return "—"
        return _changelist("record", f"job__id__exact={document.live_job_id}", "live records")

    @admin.action(description="Re-index the selected documents (a new job each)")
    def reindex(self, request, queryset):
        jobs = [pipeline.reindex(document.pk, source=Source.ADMIN) for document in queryset]
        self.message_user(request, f"Started {len(jobs)} re-index job(s).", messages.SUCCESS)

    @admin.action(description="Backfill the selected documents (fed in as capacity frees)")
    def backfill(self, request, queryset):
        run = backfills.start({"ids": list(queryset.values_list("pk", flat=True))})
        url = reverse("admin:indexing_backfill_change", args=[run.pk])
        self.message_user(
            request,
            format_html('Started <a href="{}">backfill #{}</a> of {} document(s).', url, run.pk, run.total),
            messages.SUCCESS,
        )


@admin.register(Backfill)
class BackfillAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "status",
        "progress_bar",
        "submitted",
        "total",
        "filters",
        "created_at",
        "finished_at",
    )
    list_filter = ("status",)
    readonly_fields = (
        "status",
        "filters",
        "chunk_size",
        "cursor",
        "total",
        "submitted",
        "progress_bar",
        "jobs_link",
        "created_at",
        "finished_at",
    )
    fields = readonly_fields
    actions = ["cancel"]

    def has_add_permission(self, request) -> bool:
        return False  # started by `manage.py reindex` or the documents' action

    @admin.display(description="progress")
    def progress_bar(self, run: Backfill):
        p = backfills.progress(run)
        return format_html(
            '<progress max="100" value="{}"></progress> {} succeeded, {} failed, {} running',
            p["percent"],
            p["succeeded"],
            p["failed"],
            p["active"],
        )

    @admin.display(description="jobs")
    def jobs_link(self, run: Backfill):
        return _changelist("job", f"backfill__id__exact={run.pk}", f"{run.jobs.count()} job(s)")

    @admin.action(description="Cancel the selected backfills (and their unfinished jobs)")
    def cancel(self, request, queryset):
        for run in queryset:
            backfills.cancel(run.pk)
        self.message_user(request, f"Cancelled {queryset.count()} backfill(s).", messages.SUCCESS)


class ChunkInline(admin.TabularInline):
    model = Chunk
    fields = ("number", "first_line", "units", "records", "start", "end", "sent_at", "attempts", "done_at")
    readonly_fields = fields
    extra = 0

    def get_queryset(self, request):
        return super().get_queryset(request).defer("terms")  # a big chunk's vocabulary: not shown

    can_delete = False
    max_num = 0
    show_change_link = False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "document_link",
        "status",
        "source",
        "format",
        "progress",
        "records_indexed",
        "error_count",
        "created_at",
    )
    list_filter = ("status", "source", "format", "created_at", "backfill")
    search_fields = ("document__name", "=id", "sha256", "=idempotency_key")
    list_select_related = ("document",)
    readonly_fields = (
        "document_link",
        "status",
        "source",
        "format",
        "encoding",
        "size",
        "sha256",
        "file",
        "chunk_size",
        "progress",
        "records_total",
        "records_indexed",
        "chunks_total",
        "chunks_done",
        "error_count",
        "errors_list",
        "split_info",
        "created_at",
        "split_started_at",
        "split_finished_at",
        "finished_at",
        "records_link",
        "tasks_link",
        # The open queue: how the job was submitted, and whether its end event is still owed.
        "idempotency_key",
        "reply_to",
        "correlation_id",
        "metadata",
        "events_pending",
    )
    exclude = ("document", "errors", "utf8_path", "backfill", "retry_of")
    inlines = [ChunkInline]
    actions = ["cancel", "retry"]

    # A job's records are its document's version; deleting the job would leave search's
    # statistics counting them. Cancel it, or delete its document.
    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Cancel the selected unfinished jobs")
    def cancel(self, request, queryset):
        cancelled = [pipeline.cancel(job.pk) for job in queryset.filter(status__in=ACTIVE_STATUSES)]
        self.message_user(
            request, f"Cancelled {len(cancelled)} job(s); finished jobs were left alone.", messages.SUCCESS
        )

    @admin.action(description="Retry the selected failed or cancelled jobs (a new job each)")
    def retry(self, request, queryset):
        jobs = [
            pipeline.retry(job.pk, source=Source.ADMIN)
            for job in queryset.filter(status__in=(Status.FAILED, Status.CANCELLED))
        ]
        self.message_user(
            request, f"Started {len(jobs)} retry job(s); other jobs were left alone.", messages.SUCCESS
        )

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="document", ordering="document__name")
    def document_link(self, job: Job):
        return _link("admin:indexing_document_change", job.document_id, job.document.name)

    @admin.display(description="progress")
    def progress(self, job: Job):
        return format_html(
            '<progress max="100" value="{}"></progress> {} / {} chunks',
            job.progress_percent,
            job.chunks_done,
            job.chunks_total,
        )

    @admin.display(description="errors")
    def errors_list(self, job: Job):
        if not job.errors:
            return "—"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li>{}{}</li>",
                (
                    (
                        f"line {e['line']}: "
                        if e.get("line")
                        else (f"record {e['record']}: " if e.get("record") is not None else ""),
                        e.get("message", ""),
                    )
                    for e in job.errors
                ),
            ),
        )

    @admin.display(description="records")
    def records_link(self, job: Job):
        return _changelist("record", f"job__id__exact={job.pk}", "this job's records")

    @admin.display(description="task results")
    def tasks_link(self, job: Job):
        url = reverse("admin:django_celery_results_taskresult_changelist")
        return format_html('<a href="{}?q={}">task results of this job</a>', url, f"({job.pk},")


@admin.register(Record)
class RecordAdmin(admin.ModelAdmin):
    list_display = ("id", "key", "title_short", "document_link", "job_link", "ordinal")
    search_fields = ("key", "title")
    list_select_related = ("document",)
    list_filter = ("document__format",)
    readonly_fields = ("job_link", "document_link", "ordinal", "key", "title", "body", "fields")
    exclude = ("job", "document", "search")
    show_full_result_count = False  # a count over millions of rows on every page is slow

    def get_queryset(self, request):
        return super().get_queryset(request).defer("search")

    def has_add_permission(self, request) -> bool:
        return False

    # A record is part of its job's version: deleting one alone would leave the index (FTS5) and
    # search's statistics counting it. Delete the document instead.
    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="title")
    def title_short(self, record: Record):
        return (record.title or record.body)[:80]

    @admin.display(description="document")
    def document_link(self, record: Record):
        return _link("admin:indexing_document_change", record.document_id, record.document.name)

    @admin.display(description="job")
    def job_link(self, record: Record):
        return _link("admin:indexing_job_change", record.job_id, f"#{record.job_id}")


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=Scope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiKey
        fields = ("name", "scopes", "expires_at", "revoked")

    def clean_scopes(self) -> list[str]:
        # An admin key may do everything: only a superuser hands one out, not any staff member
        # allowed to add keys.
        scopes = self.cleaned_data["scopes"]
        if Scope.ADMIN in scopes and not getattr(self, "by_superuser", False):
            raise forms.ValidationError("Only a superuser may make a key with the admin scope.")
        return scopes


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are made here or with manage.py createkey; the key is shown once, on the page after."""

    form = ApiKeyForm
    list_display = ("name", "prefix", "scopes", "expires_at", "revoked", "last_used_at", "created_at")
    list_filter = ("revoked",)
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "last_used_at", "created_at")

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.by_superuser = request.user.is_superuser
        return form

    def save_model(self, request, obj: ApiKey, form, change: bool) -> None:
        key = None if change else access.give_secret(obj)
        super().save_model(request, obj, form, change)
        if key:
            messages.warning(
                request,
                f"The new API key is {key} — copy it now: it is shown this once (only its SHA-256 is kept).",
            )
