"""Search semantics on the database in use (CI runs the suite on SQLite and on PostgreSQL): what a
sentence finds and in which order, the operators, typos, as-you-type, and live statistics."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexing import pipeline
from indexing.models import Chunk, Document, Job, Record, SearchStats, Status, Term
from indexing.schemas import SubmitOptions
from indexing.search import get_backend, search, suggest

pytestmark = pytest.mark.django_db(transaction=True)

CRANFIELD = Path(__file__).resolve().parents[2] / "shared" / "relevance" / "cranfield" / "cran.all.1400"

BIRDS = [
    ("1", "Heron", "a grey heron waits by the river"),
    ("2", "Sparrow", "a sparrow waits by the road"),
    ("3", "River", "the river runs to the sea"),
    ("4", "Escaping", "<script>alert(1)</script> the heron & the <b>egret</b>"),
] + [(str(n), f"Note {n}", f"someone waits here, note {n}") for n in range(5, 25)]


def index(name: str, rows: list[tuple[str, str, str]], *, replace: int | None = None) -> Job:
    """A JSON Lines document through every step of the pipeline, in-process."""
    data = "".join(json.dumps({"id": k, "title": t, "body": b}) + "\n" for k, t, b in rows).encode()
    options = SubmitOptions(format="jsonl", chunk_size=500)
    job = pipeline.submit(io.BytesIO(data), name=name, options=options, replace=replace)
    pipeline.split(job.pk)
    job.refresh_from_db()
    for number in range(job.chunks_total):
        pipeline.index_chunk(job.pk, number)
    pipeline.finalize(job.pk)
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED, job.errors
    return job


def keys(text: str, **options) -> list[str]:
    return [hit.key for hit in search(text, limit=10, **options).page.hits]


@pytest.fixture
def birds(captured_messages, clean_index) -> Job:
    return index("birds.jsonl", BIRDS)


def test_a_sentence_finds_its_best_partial_matches_rarest_words_first(birds) -> None:
    found = keys("why does the heron wait by the river?")
    assert found[0] == "1"  # heron and river, both rare
    assert set(found[:3]) >= {"1", "3", "4"}  # river alone, heron alone
    assert len(found) == 10  # "waits" is in 22 records: a word missing never means nothing


def test_records_holding_every_word_come_first(birds) -> None:
    assert keys("river heron")[0] == "1"
    assert keys("river heron")[1:] and set(keys("river heron")[1:3]) == {"3", "4"}


def test_match_all_requires_every_word(birds) -> None:
    assert keys("heron river", match_all=True) == ["1"]
    assert keys("heron river sparrow", match_all=True) == []


def test_phrases_or_and_exclusions_keep_their_meaning(birds) -> None:
    assert keys('"grey heron"') == ["1"]
    assert keys('"heron grey"') == []
    assert set(keys("heron OR sparrow")) == {"1", "2", "4"}
    assert keys("river -heron") == ["3"]
    assert keys('road "grey heron"') == ["1"]  # the quoted phrase is required; road is not


def test_stop_words_alone_never_make_a_hit(birds) -> None:
    page = search("the by a to", limit=10).page
    assert (page.total, page.hits) == (0, [])


def test_words_that_appear_nowhere_find_nothing_and_are_not_corrected_into_noise(birds) -> None:
    searched = search("xylophone quagga", limit=10)
    assert (searched.page.total, searched.corrected) == (0, None)


def test_a_misspelt_word_is_replaced_by_the_close_live_word_and_says_so(birds) -> None:
    searched = search("sparow", limit=10)  # a letter missing: one edit in a six-letter word
    assert searched.corrected == "sparrow"
    assert [h.key for h in searched.page.hits] == ["2"]


def test_the_last_word_being_typed_matches_as_a_prefix(birds) -> None:
    searched = search("grey spar", limit=10)
    assert "sparrow" in searched.completed
    assert set(h.key for h in searched.page.hits) >= {"1", "2"}
    assert keys("spar ") == []  # a finished word is not a prefix


def test_suggest_completes_the_last_word_from_the_live_vocabulary(birds, client) -> None:
    assert suggest("by the riv", limit=5) == ["river"]
    body = client.get("/api/suggest", {"q": "by the riv"}).json()
    assert body == {"query": "by the riv", "suggestions": ["by the river"], "words": ["river"]}


def test_snippets_escape_the_text_and_mark_the_matches(birds) -> None:
    [hit] = [h for h in search("egret", limit=10).page.hits]
    # SQLite's snippet keeps the tags as escaped text; PostgreSQL's ts_headline drops them.
    assert "<" not in hit.snippet.replace("<mark>", "").replace("</mark>", "")
    assert "<mark>egret</mark>" in hit.snippet
    assert "&amp;" in hit.snippet


def test_pages_end_where_the_ranked_candidates_end_not_at_the_estimated_total(
    captured_messages, clean_index, client
) -> None:
    rows = [(str(n), f"Reach {n}", f"the river bends at reach {n}") for n in range(1_100)]
    index("rivers.jsonl", rows + [("rare", "Mineral", "zanzibarite found by the river")])
    body = client.get("/api/search", {"q": "zanzibarite river"}).json()
    # Candidates come from the rarest word (one record); the total estimates every match.
    assert body["total_exact"] is False and body["total"] > 1_000
    assert body["ranked"] == 1 and [h["record"]["key"] for h in body["hits"]] == ["rare"]
    page = client.get("/search/", {"q": "zanzibarite river"}).content.decode()
    assert 'page=2">Next →</a>' not in page and "1–1 of about 1," in page  # thousands marked
    past = client.get("/search/", {"q": "zanzibarite river", "page": 2}).content.decode()
    assert "No more results" in past and "None of these words appear in any record.</p>" not in past
    common = client.get("/api/search", {"q": "river bends"}).json()
    assert common["ranked"] == 1_000  # past the cap: the best 1,000 are ranked, and pages reach them


def test_the_api_answers_corrections_completions_and_whether_the_total_is_exact(birds, client) -> None:
    body = client.get("/api/search", {"q": "grey sparow"}).json()
    assert body["match"] == "any" and body["total_exact"] is True
    assert body["corrected_query"] == "grey sparrow"
    assert {"typed": "sparow", "to": "sparrow"} in body["corrections"]
    assert client.get("/api/search", {"q": "heron", "match": "every"}).status_code == 400
    # The page's count names the query its results are for, the corrected one.
    page = client.get("/search/", {"q": "grey sparow"}).content.decode()
    assert "Showing results for" in page and "for <b>grey sparrow</b> (" in page


def test_statistics_follow_the_live_version(captured_messages, clean_index) -> None:
    first = index("kestrels.jsonl", [("1", "Kestrel", "a kestrel hovers"), ("2", "Kestrel", "kestrel again")])
    assert Term.objects.get(word="kestrel").df == 2
    assert SearchStats.objects.get().records == 2

    # A new version without the word: its count leaves with the old version, in one transaction.
    index("kestrels.jsonl", [("1", "Falcon", "a falcon stoops")], replace=first.document_id)
    assert Term.objects.get(word="kestrel").df == 0
    assert Term.objects.get(word="falcon").df == 1
    assert SearchStats.objects.get().records == 1
    assert keys("kestrel") == []

    # A cancelled job never went live: it counts nothing.
    job = pipeline.submit(
        io.BytesIO(b'{"id": "9", "title": "Merlin", "body": "merlin"}\n'),
        name="kestrels.jsonl",
        options=SubmitOptions(format="jsonl"),
        replace=first.document_id,
    )
    pipeline.cancel(job.pk)
    assert not Term.objects.filter(word="merlin", df__gt=0).exists()

    # Deleting the document takes its live version's counts with it.
    pipeline.delete_document(first.document_id)
    assert Term.objects.get(word="falcon").df == 0
    assert SearchStats.objects.get().records == 0


def test_a_chunks_records_are_all_written_in_order_however_few_rows_a_statement_takes(
    captured_messages, clean_index, monkeypatch
) -> None:
    if connection.vendor == "sqlite":  # SQLite writes records in multi-row INSERTs: make them tiny
        from indexing.search import sqlite as sqlite_backend

        monkeypatch.setattr(sqlite_backend, "_ROWS_PER_INSERT", (3, 1))
    rows = [(str(n), f"Plover {n}", f"plover{n}x wades") for n in range(11)]
    job = index("plovers.jsonl", rows)
    written = list(Record.objects.filter(job=job).order_by("id").values_list("ordinal", "key"))
    assert written == [(n, str(n)) for n in range(11)]
    assert [keys(f"plover{n}x") for n in range(11)] == [[str(n)] for n in range(11)]


def test_sqlite_writes_records_in_few_statement_sizes_within_its_parameter_limit() -> None:
    import sqlite3

    from indexing.search.sqlite import _insert_sizes, _rows_per_insert

    assert _insert_sizes(1234, 250_000 // 7) == [500, 500, 50, 50, 50, 50, 5, 5, 5, 5, 5, 5, 1, 1, 1, 1]
    assert _insert_sizes(12, 2) == [1] * 12  # a limit below every step but one
    assert _insert_sizes(0, 500) == []
    database = sqlite3.connect(":memory:")
    database.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 20)
    assert _rows_per_insert(database, 7) == 2


def test_a_bug_in_sqlites_stem_function_fails_the_version_instead_of_passing_for_a_lock(
    captured_messages, clean_index, monkeypatch
) -> None:
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's own stem function; PostgreSQL stems in SQL")
    from indexing.search import sqlite as sqlite_backend

    def broken(word: str) -> str:
        raise ValueError(f"cannot stem {word}")

    monkeypatch.setattr(sqlite_backend, "_stem", broken)
    with pytest.raises(RuntimeError, match="Stemming a new word failed") as raised:
        index("dunlins.jsonl", [("1", "Dunlin", "a dunlin probes")])
    assert isinstance(raised.value.__cause__, ValueError)


def test_a_word_counts_the_records_of_every_word_with_its_stem(captured_messages, clean_index) -> None:
    # The vocabulary keeps each new word's stem (SQLite stems them as it inserts them).
    index("runs.jsonl", [("1", "Runs", "she runs"), ("2", "Running", "running late"), ("3", "Ran", "ran")])
    index("more.jsonl", [("1", "Runner", "a runner running"), ("2", "Cafés", "two cafés")])
    counts = get_backend().match_counts(["run", "running", "ran"], cap=100)
    assert counts == {"run": 3, "running": 3, "ran": 1}
    if connection.vendor == "sqlite":  # FTS5's unicode61 drops accents before stemming; so do its counts
        assert get_backend().match_counts(["cafe"], cap=100) == {"cafe": 1}
    assert Term.objects.get(word="running").df == 2


def _one_edit(word: str, kind: int) -> str:
    middle = len(word) // 2
    if kind == 0:  # a letter swapped for a neighbour on the alphabet
        return word[:middle] + ("a" if word[middle] != "a" else "e") + word[middle + 1 :]
    if kind == 1:  # a letter dropped
        return word[:middle] + word[middle + 1 :]
    if kind == 2:  # a letter doubled
        return word[:middle] + word[middle] + word[middle:]
    return word[: middle - 1] + word[middle] + word[middle - 1] + word[middle + 1 :]  # two swapped


@pytest.mark.skipif(not CRANFIELD.exists(), reason="needs ../shared/relevance beside the project")
def test_twenty_one_edit_typos_find_what_the_right_word_finds_first(captured_messages, clean_index) -> None:
    from bench.relevance import read_smart

    entries = read_smart(CRANFIELD.read_text(errors="replace"))
    index("cranfield.jsonl", [(n, f.get("T", ""), f.get("W", "")) for n, f in entries])
    vocabulary = set(Term.objects.filter(df__gt=0).values_list("word", flat=True))
    words = sorted(
        Term.objects.filter(df__gte=3, df__lte=40)
        .exclude(word__regex=r"[0-9]")
        .values_list("word", flat=True)
    )
    words = [w for w in words if 6 <= len(w) <= 10]
    rng = random.Random(11)
    tried = []
    for word in rng.sample(words, 60):
        typo = _one_edit(word, len(tried) % 4)
        if typo in vocabulary or typo == word:
            continue
        # Typed and finished (the space): as-you-type completions are another test's business.
        best = keys(word + " ")[0]
        tried.append((word, typo, best, keys(typo + " ")[:3]))
        if len(tried) == 20:
            break
    assert len(tried) == 20
    missed = [(w, t) for w, t, best, top3 in tried if best not in top3]
    assert missed == [], tried


# Words of the index, operators and stop words among arbitrary text: most queries reach the SQL.
QUERY_PIECES = st.sampled_from(
    [
        "heron",
        "river",
        "waits",
        "sparow",
        "spar",
        "the",
        "a",
        "OR",
        "-",
        '"',
        "-heron",
        "747",
        "é",
        "_",
        "\x00",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.lists(st.one_of(QUERY_PIECES, st.text(max_size=12)), max_size=8).map(" ".join),
    match=st.sampled_from(["any", "all"]),
    document=st.sampled_from([None, 1]),
)
def test_no_query_text_raises_a_database_error_or_a_500(
    birds, client, text: str, match: str, document
) -> None:
    params = {"q": text, "match": match} | ({"document": birds.document_id} if document else {})
    response = client.get("/api/search", params)
    assert response.status_code == 200, response.content
    assert client.get("/api/suggest", {"q": text}).status_code == 200


def test_numbers_single_letters_and_stop_word_phrases_are_searched_as_people_mean(
    captured_messages, clean_index
) -> None:
    index(
        "planes.jsonl",
        [("1", "Boeing 747", "a jumbo jet"), ("2", "Vitamin C", "in oranges"), ("3", "Jet", "x")],
    )
    assert keys("boeing 747 ", match_all=True) == ["1"]
    assert keys("747 ") == ["1"]
    assert keys("vitamin c ", match_all=True) == ["2"]
    assert keys('"the who" oranges ') == ["2"]  # a phrase of stop words asks for nothing


def test_a_search_in_one_document_ranks_all_its_records_and_counts_exactly(birds) -> None:
    page = search("where does someone wait by the river ", limit=10, document_id=birds.document_id).page
    assert page.total_exact and page.total == 23


def test_a_search_in_one_document_finds_only_its_live_version_s_records(birds) -> None:
    other = index("other.jsonl", [("o1", "Heron", "another heron by another river")])
    newer = index("birds.jsonl", [("n1", "Heron", "a new heron by the river")], replace=birds.document_id)
    in_birds = search("heron river ", limit=10, document_id=birds.document_id).page
    assert [hit.key for hit in in_birds.hits] == ["n1"] and in_birds.total == 1
    assert [hit.key for hit in search("heron ", limit=10, document_id=other.document_id).page.hits] == ["o1"]

    # Deleted, a document's records go with its jobs: none is left behind, nothing finds them.
    pipeline.delete_document(newer.document_id)
    assert not Record.objects.filter(document_id=newer.document_id).exists()
    assert not Record.objects.filter(job_id__in=[birds.pk, newer.pk]).exists()
    assert keys("heron ") == ["o1"]


def test_counting_live_words_again_rewrites_none_of_the_vocabulary_s_indexes():
    if connection.vendor != "postgresql":
        pytest.skip("heap-only (HOT) updates are PostgreSQL's; SQLite has no such indexes")
    # Every version that goes live adds to the df of words already there. The vocabulary's
    # pages keep room (fillfactor), so those updates stay on their pages and leave the seven
    # indexes, the trigram GIN among them, unwritten (migration 0017 says what it saved).
    backend = get_backend()
    document = Document.objects.create(name="words", format="csv", size=0, sha256="", file="")
    version = Job.objects.create(document=document, format="csv", size=0, sha256="", file="", chunk_size=1)
    Chunk.objects.create(
        job=version, number=0, start=0, end=0, first_ordinal=0, first_line=1, units=1,
        terms={f"ptarmigan{n}": 1 for n in range(300)},
    )  # fmt: skip
    with transaction.atomic():  # as in a swap: the words' staging table lasts one transaction
        backend.count_terms([version.pk], [], records=0)
    with transaction.atomic(), connection.cursor() as cursor:
        backend.count_terms([version.pk], [], records=0)
        cursor.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'indexing_term'"
        )
        updated, heap_only = cursor.fetchone()
    assert updated == 300 and heap_only == 300
    assert Term.objects.get(word="ptarmigan7").df == 2
