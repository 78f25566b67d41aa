"""URLs under /api/."""
from django.urls import path, re_path

from indexing import api

urlpatterns = [
    path("documents", api.documents, name="api-documents"),
    path("documents/<int:document_id>", api.document_detail, name="api-document"),
    path("documents/<int:document_id>/reindex", api.document_reindex, name="api-document-reindex"),
    path("jobs", api.jobs, name="api-jobs"),
    path("jobs/<int:job_id>", api.job_detail, name="api-job"),
    path("jobs/<int:job_id>/cancel", api.job_cancel, name="api-job-cancel"),
    path("jobs/<int:job_id>/retry", api.job_retry, name="api-job-retry"),
    path("search", api.search, name="api-search"),
    path("status", api.status, name="api-status"),
    path("schema", api.schema, name="api-schema"),
    path("schema/messages/<slug:name>", api.message_schema, name="api-message-schema"),
    re_path(r"^.*$", api.not_found),
]
