"""Web-search query syntax -> a small query tree, and the tree -> each backend's query string.

Syntax, as on Google: bare words are AND-ed, "quoted phrases", `OR` (uppercase, bare)
between terms, `-word` / `-"phrase"` excluded. OR binds tighter than the implicit AND:
`a b OR c` means a AND (b OR c). Any text parses; what is not syntax is a separator.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

MAX_TERMS = 32  # terms beyond this are ignored: a query, not a document
MAX_WORD_LENGTH = 128  # longer "words" (blobs, hashes of hashes) are ignored, never truncated
MAX_ALTERNATIVES = 64  # product of OR-group sizes; bounds the expansion in to_websearch

# Word pieces are letters and digits; `_` is a separator, as it is for FTS5 unicode61
# and PostgreSQL's parser, so a query word is never split differently from the index.
_WORD = re.compile(r"[^\W_]+")
# A phrase runs to its closing quote or to the end of the text; a bare chunk to a space or quote.
_TOKEN = re.compile(r'(?P<neg>-*)(?:"(?P<phrase>[^"]*)"?|(?P<bare>[^\s"]+))')


@dataclass(frozen=True)
class Term:
    """One word, or several adjacent words (a phrase)."""

    words: tuple[str, ...]
    negated: bool = False


@dataclass(frozen=True)
class AnyOf:
    """An OR-group: at least two distinct terms, none negated."""

    terms: tuple[Term, ...]


@dataclass(frozen=True)
class Query:
    """An AND of clauses."""

    clauses: tuple[Term | AnyOf, ...]

    @property
    def is_empty(self) -> bool:
        """No positive term (nothing, or only exclusions): the search has no hits."""
        return not any(_is_positive(c) for c in self.clauses)


def _is_positive(clause: Term | AnyOf) -> bool:
    return isinstance(clause, AnyOf) or not clause.negated


def _words(text: str) -> tuple[str, ...]:
    return tuple(w for w in _WORD.findall(text.lower()) if len(w) <= MAX_WORD_LENGTH)


def _lex(text: str) -> Iterator[Term | None]:
    """Terms in order; None marks an OR operator. Lazy: parsing stops at MAX_TERMS."""
    for m in _TOKEN.finditer(text):
        phrase, bare = m.group("phrase"), m.group("bare")
        if bare == "OR" and not m.group("neg"):
            yield None
            continue
        # A dash not directly before a term ("a - b", "---") is punctuation, not an exclusion.
        words = _words(phrase if phrase is not None else bare or "")
        if words:
            yield Term(words, negated=bool(m.group("neg")))


def _alternatives(clauses: list[Term | AnyOf]) -> int:
    return math.prod(len(c.terms) for c in clauses if isinstance(c, AnyOf))


def parse_query(text: str) -> Query:
    """Parse user text; never raises. OR between two positive terms groups them; a
    leading, trailing or doubled OR, and an OR next to an exclusion, is ignored."""
    text = unicodedata.normalize("NFC", text)
    clauses: list[Term | AnyOf] = []
    terms = 0
    pending_or = False
    for item in _lex(text):
        if item is None:
            pending_or = bool(clauses) and _is_positive(clauses[-1])
            continue
        joins = pending_or and not item.negated
        pending_or = False
        if terms >= MAX_TERMS:
            break
        if joins:
            last = clauses[-1]
            group = last.terms if isinstance(last, AnyOf) else (last,)
            if item in group:
                continue
            grown = AnyOf(group + (item,))
            if _alternatives(clauses[:-1] + [grown]) > MAX_ALTERNATIVES:
                continue
            clauses[-1] = grown
        else:
            clauses.append(item)
        terms += 1
    # Repeats are dropped only now, so that an OR joins the term written just before it.
    return Query(tuple(dict.fromkeys(clauses)))


def _fts5_string(term: Term) -> str:
    # Inside an FTS5 string only `"` is special (doubled); the tokenizer turns several
    # words into a phrase, and keywords (OR, NOT, NEAR) and `col:` are plain text there.
    return '"' + " ".join(term.words).replace('"', '""') + '"'


def to_fts5_match(query: Query) -> str | None:
    """An SQLite FTS5 MATCH expression, or None when the query has no positive term."""
    if query.is_empty:
        return None
    positives = []
    negatives = []
    for clause in query.clauses:
        if isinstance(clause, AnyOf):
            positives.append("(" + " OR ".join(_fts5_string(t) for t in clause.terms) + ")")
        elif clause.negated:
            negatives.append(_fts5_string(clause))
        else:
            positives.append(_fts5_string(clause))
    expr = " AND ".join(positives)
    if not negatives:
        return expr
    # FTS5's NOT is binary and left-associative: ((P) NOT n1) NOT n2.
    return "(" + expr + ")" + "".join(" NOT " + n for n in negatives)


def _websearch_term(term: Term) -> str:
    # Words are letters and digits only. One word is left bare, except "or", which
    # websearch_to_tsquery would read as its operator (in any case) when bare.
    if len(term.words) == 1 and term.words[0] != "or":
        text = term.words[0]
    else:
        text = '"' + " ".join(term.words) + '"'
    return "-" + text if term.negated else text


def to_websearch(query: Query) -> str | None:
    """A string for PostgreSQL `websearch_to_tsquery` with the same meaning, or None when
    the query has no positive term.

    websearch_to_tsquery binds AND tighter than OR (`a b or c` is (a AND b) OR c) and has
    no parentheses, so a query with OR-groups is written out as an OR of AND-ed
    alternatives: `a (b OR c) -d` -> `a b -d or a c -d` (MAX_ALTERNATIVES bounds it).
    """
    if query.is_empty:
        return None
    conjuncts: list[list[Term]] = [[]]
    for clause in query.clauses:
        if isinstance(clause, AnyOf):
            conjuncts = [c + [t] for c in conjuncts for t in clause.terms]
        else:
            for c in conjuncts:
                c.append(clause)
    return " or ".join(" ".join(_websearch_term(t) for t in c) for c in conjuncts)


def highlight_terms(query: Query) -> list[str]:
    """The positive words, in query order, each once: what a UI may highlight."""
    seen: dict[str, None] = {}
    for clause in query.clauses:
        terms = clause.terms if isinstance(clause, AnyOf) else (clause,)
        for term in terms:
            if not term.negated:
                seen.update(dict.fromkeys(term.words))
    return list(seen)
