"""Top-level URLs: the app's pages and API, and Django admin."""

from django.contrib import admin
from django.urls import include, path

from indexing.views import login_throttled

urlpatterns = [
    # Admin's own login, held to the same limit on failed logins as the pages' (before admin's URLs).
    path("admin/login/", login_throttled(admin.site.login)),
    path("admin/", admin.site.urls),
    path("api/", include("indexing.api_urls")),
    path("", include("indexing.urls")),
]
