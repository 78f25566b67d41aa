"""Full-text search: the backend for the connection's database vendor, and one search's steps."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import islice

from django.conf import settings
from django.db import connection

from indexing.errors import QuernError
from indexing.query import (
    CANDIDATE_WORDS,
    CANDIDATES,
    COMPLETIONS,
    MIN_PREFIX,
    Lookup,
    corrected_text,
    narrow,
    parse_query,
    plan_search,
    wants_correction,
    words_to_check,
)
from indexing.text import WORD

from .base import Hit, SearchBackend, SearchPage, Unsupported

_backends: dict[str, SearchBackend] = {}

MAX_CORRECTED = 4
# Counting past this tells nothing more to the plan (the typo rule and the estimate of a total).
COUNT_CAP = 10_000_000


def get_backend() -> SearchBackend:
    vendor = connection.vendor
    if vendor not in _backends:
        if vendor == "postgresql":
            from .postgres import PostgresBackend

            _backends[vendor] = PostgresBackend()
        elif vendor == "sqlite":
            from .sqlite import SqliteBackend

            _backends[vendor] = SqliteBackend()
        else:
            raise Unsupported(f"Quern's search needs PostgreSQL or SQLite, not {vendor}.")
    return _backends[vendor]


@dataclass
class Searched:
    """A page of hits and what the search made of the text: corrections, completions."""

    page: SearchPage
    corrected: str | None = None  # the query as searched, when a word matching nothing was replaced
    corrections: list[tuple[str, str]] = field(default_factory=list)  # (typed, close word used)
    completed: list[str] = field(default_factory=list)


def lookup(backend: SearchBackend, words: list[str], prefix: str | None) -> Lookup:
    """Ask the vocabulary what the plan needs: match counts, close words of the rare, completions."""
    matches = backend.match_counts(words, cap=COUNT_CAP)
    # At most MAX_CORRECTED words of one query are looked up (each is a trigram search).
    rare = [w for w in words if w != prefix and wants_correction(w, matches.get(w, 0))][:MAX_CORRECTED]
    close = {w: backend.similar_words(w, limit=CANDIDATE_WORDS) for w in rare}
    completions = (
        backend.completions(prefix, limit=COMPLETIONS + 1) if prefix and len(prefix) >= MIN_PREFIX else []
    )
    if prefix and not completions and wants_correction(prefix, matches.get(prefix, 0)):
        close[prefix] = backend.similar_words(prefix, limit=CANDIDATE_WORDS)
    return Lookup(matches, close, completions)


def check_query(text: str) -> None:
    """A query, not a document: past QUERN_MAX_QUERY_CHARS or QUERN_MAX_QUERY_TERMS words, a
    QuernError that says so (400) rather than a slow search of what was surely pasted by mistake."""
    chars, terms = settings.QUERN_MAX_QUERY_CHARS, settings.QUERN_MAX_QUERY_TERMS
    if len(text) > chars:
        raise QuernError(
            "query_too_long",
            f"The query is {len(text):,} characters long; at most {chars:,} (QUERN_MAX_QUERY_CHARS). "
            "Search for its key words.",
        )
    count = sum(1 for _ in islice(WORD.finditer(text), terms + 1))
    if count > terms:
        raise QuernError(
            "query_too_long",
            f"The query has more than {terms} words (QUERN_MAX_QUERY_TERMS); search for its key words.",
        )


def search(
    text: str, *, limit: int, offset: int = 0, document_id: int | None = None, match_all: bool = False
) -> Searched:
    """Live records for what a person typed (parsed, never pasted into SQL), best first, timed."""
    check_query(text)
    started = time.perf_counter()
    backend = get_backend()
    query = parse_query(text)
    found = lookup(backend, words_to_check(query), query.prefix)
    plan = plan_search(query, match_all=match_all, lookup=found)
    if document_id is None:  # one document's records are few: all are ranked, the total exact
        plan = narrow(plan, _counts(found), records=backend.live_records(), bound=CANDIDATES)
    page = backend.search(plan, limit=limit, offset=offset, document_id=document_id)
    page.ranked = min(page.total, CANDIDATES)  # the backend's total is the candidates it found
    if not page.total_exact and plan.estimate is not None:
        page.total = max(page.total, plan.estimate)
    page.took_ms = round((time.perf_counter() - started) * 1000, 2)
    return Searched(
        page=page,
        corrected=corrected_text(query, plan),
        corrections=[(c.typed, c.to) for c in plan.corrections],
        completed=list(plan.completed),
    )


def _counts(found: Lookup) -> dict[str, int]:
    """Records each word of the plan matches: the typed ones, their close words, the completions."""
    counts = dict(found.matches)
    for candidates in found.close.values():
        counts.update({w: df for w, df in candidates if w not in counts})
    counts.update({w: df for w, df in found.completions if w not in counts})
    return counts


def suggest(text: str, *, limit: int) -> list[str]:
    """Completions of the last word of `text` from the live vocabulary, most frequent first."""
    check_query(text)
    query = parse_query(text)
    if not query.prefix or len(query.prefix) < MIN_PREFIX:
        return []
    return [w for w, _ in get_backend().completions(query.prefix, limit=limit)]


__all__ = [
    "Hit",
    "SearchBackend",
    "SearchPage",
    "Searched",
    "Unsupported",
    "get_backend",
    "search",
    "suggest",
]
