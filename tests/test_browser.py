"""In a real browser: headless Chromium against the live server, with the real worker behind it."""

from __future__ import annotations

import os
import re
from pathlib import Path

# Playwright's sync API runs an event loop in this thread; Django's ORM calls from the test are still sync.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

import pytest
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from tests.conftest import wait_for_job  # noqa: E402
from tests.test_pipeline import make_csv  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = os.environ.get("QUERN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        # Never a silent skip: `make test` installs Debian's chromium.
        pytest.fail(
            f"no Chromium at {CHROMIUM}: run `make test` (it installs it) or apt-get install chromium"
        )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("QUERN_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_upload_follows_the_job_live_to_success_and_search_highlights_the_word(
    live_server, pipeline, page, shots, tmp_path
):
    csv = tmp_path / "fruit.csv"
    csv.write_bytes(make_csv(400, marker_row=123, marker="quokkaberry"))

    page.goto(live_server.url + "/")
    expect(page.get_by_role("heading", name="Index a document")).to_be_visible()
    page.set_input_files("input[name=file]", str(csv))
    page.screenshot(path=str(shots / "1-upload.png"), full_page=True)
    page.get_by_role("button", name="Index it").click()

    page.wait_for_url(re.compile(r"/jobs/\d+/$"))
    job_id = int(re.search(r"/jobs/(\d+)/$", page.url).group(1))
    navigations = []
    page.on("framenavigated", lambda frame: frame == page.main_frame and navigations.append(frame.url))

    # The page's own polling must bring the status to "succeeded": no reload here.
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=60_000)
    assert navigations == [], f"the job page navigated while polling: {navigations}"
    assert page.url.endswith(f"/jobs/{job_id}/")
    expect(page.locator("#job-progress")).to_have_js_property("value", 100)
    expect(page.locator("#records-indexed")).to_have_text("400")
    expect(page.locator("#job-outcome")).to_contain_text("searchable")
    page.screenshot(path=str(shots / "2-job.png"), full_page=True)

    page.goto(live_server.url + "/search/?q=quokkaberry")
    expect(page.locator("mark", has_text="quokkaberry")).to_be_visible()
    expect(page.locator("#result-count")).to_contain_text("1 result")
    page.screenshot(path=str(shots / "3-search.png"), full_page=True)

    page.goto(live_server.url + "/jobs/")
    expect(page.locator("table.jobs")).to_contain_text("fruit.csv")
    page.screenshot(path=str(shots / "4-jobs.png"), full_page=True)


def test_pasting_text_without_a_name_shows_the_error_in_words(live_server, page, shots):
    page.goto(live_server.url + "/")
    page.fill("textarea[name=text]", "# Otters\n\nOtters hold hands while sleeping.\n")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Index it").click()
    assert answer.value.status == 400
    page.wait_for_load_state()
    error = page.locator(".errorlist, .alert.error").filter(has_text=re.compile(r"\bname\b", re.I))
    expect(error.first).to_be_visible()
    expect(page.locator("textarea[name=text]")).to_have_value(re.compile("Otters hold hands"))
    page.screenshot(path=str(shots / "5-upload-error.png"), full_page=True)


def test_a_bad_chunk_size_shows_the_schema_s_message_beside_the_field(live_server, page, shots):
    page.goto(live_server.url + "/")
    page.fill("textarea[name=text]", "Otters hold hands while sleeping.\n")
    page.fill("input[name=name]", "otters.txt")
    page.locator("summary", has_text="More options").click()
    page.fill("input[name=chunk_size]", "0")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Index it").click()
    assert answer.value.status == 400
    page.wait_for_load_state()
    # The options fold open again when one of them is at fault, so the message is seen.
    expect(page.get_by_text("chunk_size must be between 1 and 100,000; got 0.")).to_be_visible()
    page.screenshot(path=str(shots / "5-upload-chunk-size-error.png"), full_page=True)


def test_pages_fit_a_phone_screen(live_server, pipeline, client, browser, shots):
    # A finished job with a long name and a long hit, so the list, job and search pages have content
    # to squeeze.
    long_name = "a-rather-long-document-name-that-could-push-the-table-sideways-on-a-phone.md"
    text = "# Wombats\n\nWombats dig burrows " + "and keep digging " * 30 + "all night.\n"
    response = client.post("/", {"text": text, "name": long_name})
    assert response.status_code == 303
    job_id = int(response["Location"].rstrip("/").rsplit("/", 1)[1])
    assert wait_for_job(job_id).status == "succeeded"
    # And the widest row a list shows: a six-digit job id, the longest status, a long name.
    from indexing.models import Document, Job

    document = Document.objects.create(name=long_name, format="markdown", size=1, sha256="0" * 64, file="")
    Job.objects.create(
        pk=987654,
        document=document,
        status="cancelled",
        format="markdown",
        size=1,
        sha256="0" * 64,
        file="",
        chunk_size=5000,
    )

    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        pages = [
            ("upload", "/"),
            ("jobs", "/jobs/"),
            ("job", f"/jobs/{job_id}/"),
            ("search", "/search/?q=x"),
            ("search-hit", "/search/?q=wombats"),
        ]
        for name, path in pages:
            page.goto(live_server.url + path)
            width = page.evaluate("document.documentElement.scrollWidth")
            page.screenshot(path=str(shots / f"6-phone-{name}.png"), full_page=True)
            assert width <= 390 + 1, f"{path} scrolls sideways on a phone: {width} px wide"
            # Nor does a table hide columns in a box of its own that scrolls with no sign of it.
            for wrap in page.locator(".table-wrap").all():
                inner, shown = wrap.evaluate("e => [e.scrollWidth, e.clientWidth]")
                assert inner <= shown + 1, f"{path}: a table {inner} px wide in {shown} px"
        # The search form stacks on a phone; its checkbox stays a box beside its words, not
        # stretched across the line away from them (it was 257 px wide).
        page.goto(live_server.url + "/search/?q=wombats")
        box = page.locator(".match-all input").bounding_box()
        assert box["width"] < 30, box
    finally:
        context.close()


def test_cancel_button_stops_a_running_job_and_offers_retry(live_server, pipeline, client, page, shots):
    upload = client.post("/api/documents", {"file": _named(make_csv(30_000), "long.csv"), "chunk_size": 300})
    job_id = upload.json()["id"]
    page.goto(f"{live_server.url}/jobs/{job_id}/")
    expect(page.locator("#job-status")).to_have_text("indexing", timeout=30_000)
    page.screenshot(path=str(shots / "7-job-running.png"), full_page=True)
    page.get_by_role("button", name="Cancel job").click()
    page.wait_for_url(re.compile(rf"/jobs/{job_id}/$"))
    expect(page.locator("#job-status")).to_have_text("cancelled")
    expect(page.locator("#job-outcome")).to_contain_text("previous version stays searchable")
    expect(page.get_by_role("button", name="Cancel job")).to_be_hidden()
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
    expect(page.locator("#records-verb")).to_have_text("indexed, then removed")  # not "stored"
    page.screenshot(path=str(shots / "8-job-cancelled.png"), full_page=True)
    assert wait_for_job(job_id).status == "cancelled"

    page.get_by_role("button", name="Retry").click()
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))
    assert not page.url.endswith(f"/jobs/{job_id}/")
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=120_000)


def test_status_page_draws_queues_workers_and_the_chart_for_staff(
    live_server, pipeline, client, page, shots, django_user_model
):
    django_user_model.objects.create_superuser("boss", "boss@example.com", "a-long-password-1")
    response = client.post(
        "/api/documents",
        data={"name": "s.txt", "content": "alpha\n\nbeta\n"},
        content_type="application/json",
    )
    assert wait_for_job(response.json()["id"]).status == "succeeded"

    page.goto(live_server.url + "/status/")
    page.fill("input[name=username]", "boss")
    page.fill("input[name=password]", "a-long-password-1")
    page.get_by_role("button", name=re.compile("log in", re.I)).click()
    page.wait_for_url(re.compile(r"/status/$"))
    expect(page.get_by_role("heading", name="Status", exact=True)).to_be_visible()
    for queue in ("ingest", "index", "backfill"):
        expect(page.locator(f"#queues tr[data-queue={queue}] td.consumers")).not_to_have_text("0")
    expect(page.locator("#workers li[data-worker]").first).to_be_visible()
    expect(page.locator("#jobs-succeeded")).to_have_text("1")
    expect(page.locator("#chart rect.bar")).to_have_count(60)
    expect(page.locator("#chart-total")).to_contain_text("2 records in the last hour")
    page.screenshot(path=str(shots / "9-status.png"), full_page=True)


def _named(data: bytes, name: str):
    import io

    stream = io.BytesIO(data)
    stream.name = name
    return stream


def test_search_page_answers_while_typing_with_partial_matches_and_corrections(
    live_server, captured_messages, clean_index, page, shots
):
    from tests.test_search import BIRDS, index

    index("birds.jsonl", BIRDS)
    page.goto(live_server.url + "/search/")
    page.evaluate("window.notReloaded = true")
    page.locator("input[name=q]").press_sequentially("where does the sparow wai", delay=40)
    expect(page.locator("#correction")).to_contain_text("Showing results for where does the sparrow wai")
    expect(page.locator("#result-count")).to_contain_text("of 22 results")  # sparrow, or a word for waits
    # The count names the query its results are for: the corrected one, as the line above it says.
    expect(page.locator("#result-count")).to_contain_text("results for where does the sparrow wai")
    expect(page.locator(".hit").first.locator(".hit-title")).to_have_text("Sparrow")
    assert page.evaluate("window.notReloaded") is True  # answered in place, no page load
    assert "q=where+does+the+sparow+wai" in page.url.replace("%20", "+")
    page.screenshot(path=str(shots / "search-as-you-type.png"), full_page=True)

    # Every word: only the record holding both.
    page.locator("input[name=q]").fill("sparrow road")
    page.locator("input[name=match]").check()
    expect(page.locator("#result-count")).to_contain_text("1–1 of 1 result")
    page.screenshot(path=str(shots / "search-every-word.png"), full_page=True)


def test_with_keys_required_a_page_sends_to_login_and_a_login_opens_it(
    live_server, transactional_db, page, shots, settings
):
    from django.contrib.auth.models import User

    settings.QUERN_REQUIRE_KEYS = True
    User.objects.create_user("ada", password="pw-for-browser")
    page.goto(live_server.url + "/jobs/")
    assert "/login/" in page.url and page.get_by_role("heading", name="Log in").is_visible()
    assert page.locator(".open-mode").count() == 0
    page.screenshot(path=str(shots / "8-login.png"), full_page=True)
    page.get_by_label("User name").fill("ada")
    page.get_by_label("Password").fill("pw-for-browser")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(live_server.url + "/jobs/")
    assert page.get_by_role("button", name="Log out ada").is_visible()


def test_open_mode_says_so_on_the_page(live_server, page, shots, settings):
    settings.QUERN_REQUIRE_KEYS = False
    page.goto(live_server.url + "/")
    assert "anyone who can reach this server" in page.locator(".open-mode").inner_text()


def test_an_archive_uploaded_through_the_page_is_followed_to_its_files_jobs(
    live_server, pipeline, page, shots, tmp_path
):
    import zipfile

    archive = tmp_path / "marsh.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("marsh/herons.csv", "id,text\n1,a grey heron\n2,a purple heron\n")
        z.writestr("marsh/egrets.md", "# Egrets\n\nLittle egrets wade.\n")
    page.goto(live_server.url + "/")
    page.set_input_files("input[name=file]", str(archive))
    page.get_by_role("button", name="Index it").click()
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=60_000)
    expect(page.locator("#job-outcome")).to_contain_text("each file is a document")
    expect(page.locator("#records-total")).to_have_text("2")
    page.screenshot(path=str(shots / "archive-job.png"), full_page=True)
    page.locator("#job-outcome a").click()
    expect(page.locator("table.jobs")).to_contain_text("marsh/herons.csv")
    expect(page.locator("table.jobs")).to_contain_text("marsh/egrets.md")
    page.screenshot(path=str(shots / "archive-files.png"), full_page=True)


@pytest.mark.parametrize("width", [1280, 390])
def test_the_top_bar_keeps_one_height_on_every_page(live_server, browser, shots, width):
    # The search page has no search box in its bar (its own form is the page), and the bar must
    # not jump by the box's height when a person moves between pages, on a phone too.
    context = browser.new_context(viewport={"width": width, "height": 800})
    try:
        page = context.new_page()
        heights = {}
        for path in ("/", "/jobs/", "/search/"):
            page.goto(live_server.url + path)
            heights[path] = page.locator("header.topbar").bounding_box()["height"]
        page.screenshot(path=str(shots / f"top-bar-search-{width}.png"))
    finally:
        context.close()
    assert len(set(heights.values())) == 1, heights
