"""The web pages."""
from django.urls import path

from indexing import views

urlpatterns = [
    path("", views.upload, name="upload"),
    path("jobs/", views.job_list, name="job-list"),
    path("jobs/<int:job_id>/", views.job_detail, name="job-detail"),
    path("search/", views.search, name="search"),
]
