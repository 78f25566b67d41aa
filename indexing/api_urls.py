"""URLs under /api/: the Ninja API (its schema at /api/schema, docs at /api/docs), else a JSON 404."""

from django.urls import path, re_path

from indexing import api

urlpatterns = [
    path("", api.urls()),
    # [\s\S], not ".": a path holding a newline (%0A) is still the API's, answered in JSON (the
    # schema fuzzer found "." stopping at it, and Django's HTML 404 answering). Not (?s): Django's
    # reverse() refuses inline flags in any pattern.
    re_path(r"^[\s\S]*$", api.not_found),
]
