"""Top-level URLs: the app's pages and API, and Django admin."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("indexing.api_urls")),
    path("", include("indexing.urls")),
]
