"""URLs under /api/: the Ninja API (its schema at /api/schema, docs at /api/docs), else a JSON 404."""

from django.urls import path, re_path

from indexing import api

urlpatterns = [
    path("", api.urls()),
    re_path(r"^.*$", api.not_found),
]
