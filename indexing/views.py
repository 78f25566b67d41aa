"""The web pages: upload, jobs with live progress, search."""

from __future__ import annotations

import io
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.views import redirect_to_login
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from indexing import access, pipeline, schemas
from indexing.errors import QuernError
from indexing.formats.archives import ARCHIVE_FORMAT
from indexing.forms import UploadForm
from indexing.models import Job, Source
from indexing.pipeline import backpressure
from indexing.pipeline.status import snapshot
from indexing.schemas import Match, SearchResults
from indexing.search import search as search_records


class HttpResponseSeeOther(HttpResponseRedirect):
    status_code = 303


def login_when_required(view=None, *, public=lambda: False):
    """With keys required (production), a page needs a Django login, unless `public()` says not."""

    def wrap(view):
        @wraps(view)
        def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if access.required() and not public() and not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            return view(request, *args, **kwargs)

        return guarded

    return wrap(view) if view else wrap


def login_throttled(view):
    """A login view that refuses an address after QUERN_LOGIN_FAILURES failed logins within
    QUERN_LOGIN_WINDOW seconds (429 + Retry-After), so a password cannot be guessed at speed.
    A failure is a POST that is not answered with the redirect of a login that worked."""

    @wraps(view)
    def throttled(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method != "POST":
            return view(request, *args, **kwargs)
        key = f"quern:login-failures:{access.client_address(request)}"
        window = settings.QUERN_LOGIN_WINDOW
        if cache.get(key, 0) >= settings.QUERN_LOGIN_FAILURES:
            response = HttpResponse(
                f"Too many failed logins from this address: try again in {window // 60} minutes.",
                status=429,
                content_type="text/plain; charset=utf-8",
            )
            response["Retry-After"] = str(window)
            return response
        response = view(request, *args, **kwargs)
        if response.status_code != 302:
            try:
                cache.incr(key)
            except ValueError:  # the first failure (or its window just ended): a window starts
                cache.set(key, 1, window)
        return response

    return throttled


@login_when_required
def upload(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return render(request, "indexing/upload.html", {"form": UploadForm()})
    form = UploadForm(request.POST, request.FILES)
    try:
        backpressure.check()
    except backpressure.Overloaded as error:
        form.is_valid()  # keep what was typed, and show why nothing was stored
        form.add_error(None, error.message)
        response = render(request, "indexing/upload.html", {"form": form}, status=503)
        response["Retry-After"] = str(error.retry_after)
        return response
    status = 400
    if form.is_valid():
        data = form.cleaned_data
        stream = data["file"] or io.BytesIO(data["text"].encode("utf-8"))
        name = (data["name"] or "").strip() or data["file"].name
        size = data["file"].size if data["file"] else len(data["text"].encode("utf-8"))
        try:
            jobs = pipeline.submit_upload(
                stream, name=name, size=size, options=data["options"], source=Source.WEB
            )
        except QuernError as error:
            form.add_error(None, error.message)
            status = error.status  # 507 when the storage is full: the server's fault, not the form's
        else:
            # One document: its job's page; an archive's many: the job list, newest first.
            return HttpResponseSeeOther(jobs[0].get_absolute_url() if len(jobs) == 1 else reverse("job-list"))
    return render(request, "indexing/upload.html", {"form": form}, status=status)


@login_when_required
def job_list(request: HttpRequest) -> HttpResponse:
    jobs = Job.objects.select_related("document")
    archive = request.GET.get("archive", "")
    archive = archive if archive.isdigit() and len(archive) < 19 else ""  # a job id fits a bigint
    if archive:  # the files of one archive job, from its page
        jobs = jobs.filter(archive_id=int(archive))
    page = Paginator(jobs, settings.QUERN_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "indexing/job_list.html", {"page": page, "archive": archive})


@login_when_required
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(Job.objects.select_related("document"), pk=job_id)
    # An archive's files: how their own jobs stand, by status.
    files = (
        list(job.members.order_by("status").values_list("status").annotate(n=Count("id")))
        if job.format == ARCHIVE_FORMAT
        else []
    )
    return render(
        request,
        "indexing/job_detail.html",
        {"job": job, "files": files, "job_json": schemas.Job.of(job).model_dump(mode="json")},
    )


@login_when_required
def job_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    """The job page's Cancel button (POST): the job ends cancelled; back to its page."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        pipeline.cancel(job_id)
    except QuernError as error:
        if error.status == 404:
            raise Http404(error.message) from None
        messages.error(request, error.message)
    return HttpResponseSeeOther(reverse("job-detail", args=[job_id]))


@login_when_required
def job_retry(request: HttpRequest, job_id: int) -> HttpResponse:
    """The job page's Retry button (POST): a new job over the same input; to its page."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        job = pipeline.retry(job_id, source=Source.WEB)
    except QuernError as error:
        if error.status == 404:
            raise Http404(error.message) from None
        messages.error(request, error.message)
        return HttpResponseSeeOther(reverse("job-detail", args=[job_id]))
    return HttpResponseSeeOther(job.get_absolute_url())


@login_when_required(public=lambda: settings.QUERN_PUBLIC_SEARCH)
def search(request: HttpRequest) -> HttpResponse:
    typed = request.GET.get("q", "")  # as typed: a space after the last word says it is finished
    q = typed.strip()
    match = Match.ALL if request.GET.get("match") == Match.ALL else Match.ANY
    per_page = 10
    try:
        page_number = max(1, min(int(request.GET.get("page", "1")), 1000))
    except ValueError:
        page_number = 1
    offset = (page_number - 1) * per_page
    results, error = None, None
    if q:
        try:
            searched = search_records(typed, limit=per_page, offset=offset, match_all=match == Match.ALL)
        except QuernError as refused:  # e.g. a query past QUERN_MAX_QUERY_CHARS
            error = refused.message
        else:
            results = SearchResults.of(q, searched, match=match, limit=per_page, offset=offset)
            results = results.model_dump(mode="json")
    context = {"q": q, "match": match.value, "results": results, "page_number": page_number, "error": error}
    if results:
        # Past an estimated total, only the ranked candidates can be paged through.
        last_page = (results["ranked"] + per_page - 1) // per_page
        context.update(
            first_shown=results["offset"] + 1 if results["hits"] else 0,
            last_shown=results["offset"] + len(results["hits"]),
            previous_page=page_number - 1 if page_number > 1 else None,
            next_page=page_number + 1 if page_number < last_page else None,
        )
    return render(request, "indexing/search.html", context)


@staff_member_required
def status(request: HttpRequest) -> HttpResponse:
    """The live view: the page fetches GET /api/status every few seconds and redraws itself."""
    return render(request, "indexing/status.html", {"snapshot": snapshot()})


def access_mode(request: HttpRequest) -> dict:
    """Every page says when it is open to anyone (keys not required: the embedded first try)."""
    return {"quern_open": not access.required()}
