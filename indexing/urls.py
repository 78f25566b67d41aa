"""The web pages."""

from django.contrib.auth import views as auth_views
from django.urls import path

from indexing import views

urlpatterns = [
    path("", views.upload, name="upload"),
    path("jobs/", views.job_list, name="job-list"),
    path("jobs/<int:job_id>/", views.job_detail, name="job-detail"),
    path("jobs/<int:job_id>/cancel", views.job_cancel, name="job-cancel"),
    path("jobs/<int:job_id>/retry", views.job_retry, name="job-retry"),
    path("search/", views.search, name="search"),
    path("status/", views.status, name="status"),
    path(
        "login/",
        views.login_throttled(auth_views.LoginView.as_view(template_name="indexing/login.html")),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
