"""Web-search query syntax -> a small query tree -> a search plan -> each backend's query string.

Syntax, as on Google: bare words, "quoted phrases", `OR` (uppercase, bare) between terms,
`-word` / `-"phrase"` excluded. OR binds tighter than the implicit AND: `a b OR c` means a AND
(b OR c) when every word is asked for (match=all). Any text parses; what is not syntax is a
separator.

A plan (`plan_search`) says what a search asks of a record: by default a sentence's bare words
and OR-groups are wanted, not required — a record needs one of them and ranks by how well it
matches (BM25) — while phrases are required and exclusions excluded; `match_all` requires every
clause. Stop words alone never make a hit. What the vocabulary says (a `Lookup`) adds close words
for a word that matches nothing or little, and completions of a last word still being typed.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from indexing.text import STOP_WORDS, WORD, edit_distance, is_vocabulary_word, typo_budget

MAX_TERMS = 32  # terms beyond this are ignored: a query, not a document
MAX_WORD_LENGTH = 128  # longer "words" (blobs, hashes of hashes) are ignored, never truncated
MAX_ALTERNATIVES = 64  # product of OR-group sizes: bounds the combinations a query can spell out

# A phrase runs to its closing quote or to the end of the text; a bare chunk to a space or quote.
_TOKEN = re.compile(r'(?P<neg>-*)(?:"(?P<phrase>[^"]*)"?|(?P<bare>[^\s"]+))')


@dataclass(frozen=True)
class Term:
    """One word, or several adjacent words (a phrase)."""

    words: tuple[str, ...]
    negated: bool = False
    # In quotes: a phrase asked for. Unquoted, several words are one written with punctuation
    # inside ("shock-wave", "don't"): a phrase when every word is required, else its words.
    quoted: bool = False


@dataclass(frozen=True)
class AnyOf:
    """An OR-group: at least two distinct terms, none negated."""

    terms: tuple[Term, ...]


@dataclass(frozen=True)
class Query:
    """An AND of clauses."""

    clauses: tuple[Term | AnyOf, ...]
    # The text ends inside its last bare word: the person may still be typing it (as-you-type).
    prefix: str | None = None

    @property
    def is_empty(self) -> bool:
        """No positive term (nothing, or only exclusions): the search has no hits."""
        return not any(_is_positive(c) for c in self.clauses)


def _is_positive(clause: Term | AnyOf) -> bool:
    return isinstance(clause, AnyOf) or not clause.negated


def _words(text: str) -> tuple[str, ...]:
    return tuple(w for w in WORD.findall(text.lower()) if len(w) <= MAX_WORD_LENGTH)


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
            yield Term(words, negated=bool(m.group("neg")), quoted=phrase is not None)


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
    unique = tuple(dict.fromkeys(clauses))
    return Query(unique, prefix=_typed_prefix(text, unique))


def _typed_prefix(text: str, clauses: tuple[Term | AnyOf, ...]) -> str | None:
    """The last word when the text ends inside it, bare and alone: it may be half typed."""
    if not text or not WORD.match(text[-1]) or text.count('"') % 2:  # an open phrase is not a word
        return None
    tail = text.split()[-1]
    if '"' in tail or tail.startswith("-") or tail == "OR":
        return None
    words = _words(tail)
    if len(words) != 1 or Term(words) not in clauses:
        return None
    return words[0]


# --- the search plan ------------------------------------------------------------------------

# Typo corrections stand in for a word that matches nothing, and join a word that matches so
# little (fewer records than RARE) that a close word matching FAR_MORE times as many is likelier
# what was meant. Each correction or completion counts for less than the word typed.
RARE = 3
FAR_MORE = 20
CANDIDATE_WORDS = 64  # vocabulary words alike in trigrams, checked for their edit distance
# Records ranked at most by one search when many match (see `narrow`). On Cranfield, 1,000 kept
# nDCG@10 at 0.374 (0.377 at 2,000; 0.361 at 500, below the plain BM25's 0.369); on 1.29 M bench
# records PostgreSQL's p95 fell from 43 ms to 20 ms (2,000 to 1,000; README "Search").
CANDIDATES = 1000
CORRECTIONS_PER_WORD = 1  # the nearest, most frequent: what "showing results for" names
COMPLETIONS = 5
MIN_PREFIX = 2
TYPO_WEIGHT = 0.5
COMPLETION_WEIGHT = 0.6


@dataclass(frozen=True)
class Alternative:
    """One way a group is matched: a word, or a phrase; weight 1 for what was typed."""

    words: tuple[str, ...]
    weight: float = 1.0


@dataclass(frozen=True)
class Group:
    """A clause of the plan: matched when any alternative is; `required` or only wanted."""

    alternatives: tuple[Alternative, ...]
    required: bool = False


@dataclass(frozen=True)
class Correction:
    typed: str
    to: str
    replaced: bool  # True: the typed word matched nothing; False: its close word joined it


@dataclass(frozen=True)
class Plan:
    groups: tuple[Group, ...] = ()
    excluded: tuple[Term, ...] = ()
    corrections: tuple[Correction, ...] = ()
    completed: tuple[str, ...] = ()  # completions of the last word, most frequent first
    # Set by `narrow` when the wanted words together match too many records: candidates must
    # match one of these (the rarest), and the total is the estimate.
    tier: tuple[Alternative, ...] = ()
    estimate: int | None = None

    @property
    def is_empty(self) -> bool:
        return not self.groups

    def alternatives(self) -> list[Alternative]:
        return [a for g in self.groups for a in g.alternatives]


@dataclass(frozen=True)
class Lookup:
    """What the vocabulary said about a query's words (the backend asks; see `words_to_check`)."""

    matches: Mapping[str, int] = field(default_factory=dict)  # records each word matches (capped)
    close: Mapping[str, Sequence[tuple[str, int]]] = field(default_factory=dict)  # word -> (word, df)
    completions: Sequence[tuple[str, int]] = ()  # vocabulary words starting with the prefix, (word, df)


def _bare_words(query: Query) -> list[str]:
    return [
        c.words[0]
        for c in query.clauses
        if isinstance(c, Term) and not c.negated and len(c.words) == 1 and c.words[0] not in STOP_WORDS
    ]


def words_to_check(query: Query) -> list[str]:
    """The bare words whose match counts the plan needs (typo rule); the prefix among them. Only
    words the vocabulary keeps: a number or a single letter is searched as it is, uncounted."""
    found = [w for w in _bare_words(query) if is_vocabulary_word(w)]
    if query.prefix and query.prefix not in found and is_vocabulary_word(query.prefix):
        found.append(query.prefix)
    return found


def wants_correction(word: str, matches: int) -> bool:
    return matches < RARE and typo_budget(word) > 0 and not any(ch.isdigit() for ch in word)


def close_words(word: str, candidates: Sequence[tuple[str, int]], matches: int) -> list[tuple[str, int]]:
    """Vocabulary words within the word's typo budget, nearest then most frequent first; for a
    word that matches a little, only those matching FAR_MORE times as often."""
    budget = typo_budget(word)
    scored = []
    for candidate, df in candidates:
        if candidate == word or df <= 0 or (matches and df < FAR_MORE * matches):
            continue
        distance = edit_distance(word, candidate, budget)
        if distance <= budget:
            scored.append((distance, -df, candidate))
    return [(c, -negdf) for _, negdf, c in sorted(scored)[:CORRECTIONS_PER_WORD]]


def plan_search(query: Query, *, match_all: bool = False, lookup: Lookup | None = None) -> Plan:
    """What a search asks of a record (see the module's docstring); pure."""
    lookup = lookup or Lookup()
    groups: list[Group] = []
    excluded: list[Term] = []
    corrections: list[Correction] = []
    completed: tuple[str, ...] = ()
    for clause in query.clauses:
        if isinstance(clause, AnyOf):
            alternatives = tuple(Alternative(t.words) for t in clause.terms if not _stop_words_only(t.words))
            if alternatives:
                groups.append(Group(alternatives, required=match_all))
            continue
        if _stop_words_only(clause.words):
            continue  # stop words alone never make a hit, in a phrase or out of one, typed or half typed
        if clause.negated:
            excluded.append(clause)
            continue
        if len(clause.words) > 1 and (clause.quoted or match_all):
            groups.append(Group((Alternative(clause.words),), required=True))
            continue
        if len(clause.words) > 1:
            groups += [Group((Alternative((w,)),)) for w in clause.words if w not in STOP_WORDS]
            continue
        word = clause.words[0]
        alternatives: list[Alternative] = []
        # A word the vocabulary does not keep (a number, one letter) is not counted: it stays.
        matches = lookup.matches.get(word, 1)
        if matches > 0:
            alternatives.append(Alternative((word,)))
        completions: list[str] = []
        if word == query.prefix and len(word) >= MIN_PREFIX:
            completions = [w for w, _ in lookup.completions if w != word][:COMPLETIONS]
            completed = tuple(completions)
            alternatives += [Alternative((w,), COMPLETION_WEIGHT) for w in completions]
        if not completions and wants_correction(word, matches):
            for close, _ in close_words(word, lookup.close.get(word, ()), matches):
                alternatives.append(Alternative((close,), TYPO_WEIGHT))
                corrections.append(Correction(word, close, replaced=matches == 0))
        if alternatives:
            groups.append(Group(tuple(alternatives), required=match_all))
        elif match_all:
            return Plan(corrections=tuple(corrections))  # a required word that matches nothing
    return Plan(tuple(groups), tuple(excluded), tuple(corrections), completed)


def _stop_words_only(words: tuple[str, ...]) -> bool:
    return all(w in STOP_WORDS for w in words)


def _share(alternatives: Sequence[Alternative], counts: Mapping[str, int], records: int) -> float:
    """The share of records matching any of the alternatives, words taken as independent."""
    missing = 1.0
    for a in alternatives:
        known = [counts[w] for w in a.words if w in counts]
        missing *= 1 - min(1.0, (min(known) if known else 0) / records)
    return 1 - missing


def narrow(plan: Plan, counts: Mapping[str, int], *, records: int, bound: int) -> Plan:
    """Bound the records a search ranks: past `bound` expected matches, the total becomes an
    estimate and, for a sentence, candidates come from its rarest words (those weigh most in
    BM25; the common ones still count in the score of every candidate).

    `counts`: records each word matches (a word not in it counts as rare); `records`: live ones.
    """
    if plan.is_empty or records <= 0:
        return plan
    required = [g for g in plan.groups if g.required]
    if required:
        share = math.prod(_share(g.alternatives, counts, records) for g in required)
    else:
        share = 1 - math.prod(1 - _share(g.alternatives, counts, records) for g in plan.groups)
    estimate = round(share * records)
    if estimate <= bound:
        return plan
    tier: tuple[Alternative, ...] = ()
    if not required:
        by_rarity = sorted(
            plan.alternatives(), key=lambda a: max((counts.get(w, 0) for w in a.words), default=0)
        )
        chosen, expected = [], 0
        for a in by_rarity:
            n = max((counts.get(w, 0) for w in a.words), default=0)
            if chosen and expected + n > bound:
                break
            chosen.append(a)
            expected += n
        if len(chosen) < len(by_rarity):
            tier = tuple(chosen)
    return Plan(plan.groups, plan.excluded, plan.corrections, plan.completed, tier, estimate)


def corrected_text(query: Query, plan: Plan) -> str | None:
    """The query as searched, when a word that matched nothing was replaced: for "showing results
    for …". Only bare words are ever corrected; the rest is written back as it was typed."""
    replaced = {}
    for c in plan.corrections:
        if c.replaced:
            replaced.setdefault(c.typed, c.to)
    if not replaced:
        return None

    def written(t: Term) -> str:
        if len(t.words) == 1 and not t.negated and not t.quoted:
            return replaced.get(t.words[0], t.words[0])
        text = " ".join(t.words) if t.quoted else "-".join(t.words)
        return ("-" if t.negated else "") + (f'"{text}"' if t.quoted else text)

    clauses = (
        " OR ".join(map(written, c.terms)) if isinstance(c, AnyOf) else written(c) for c in query.clauses
    )
    return " ".join(clauses)


def _fts5_phrase(words: tuple[str, ...]) -> str:
    return '"' + " ".join(words).replace('"', '""') + '"'


def plan_to_fts5(plan: Plan) -> str | None:
    """An SQLite FTS5 MATCH expression for a plan, or None when it asks for nothing.

    Wanted groups are OR-ed; required ones AND-ed. With both, the wanted words are OR-ed in
    beside the required ones (`R AND (R OR w1 OR w2)`, the same rows as R) so that bm25() scores
    them too: it ranks by every phrase of the expression.
    """
    if plan.is_empty:
        return None

    def group(g: Group) -> str:
        alts = [_fts5_phrase(a.words) for a in g.alternatives]
        return alts[0] if len(alts) == 1 else "(" + " OR ".join(alts) + ")"

    required = [group(g) for g in plan.groups if g.required]
    every = " OR ".join(_fts5_phrase(a.words) for a in plan.alternatives())
    if plan.tier:
        expr = "(" + " OR ".join(_fts5_phrase(a.words) for a in plan.tier) + ") AND (" + every + ")"
    elif not required:
        expr = every
    elif len(required) == len(plan.groups):
        expr = " AND ".join(required)
    else:
        expr = " AND ".join(required) + " AND (" + every + ")"
    if not plan.excluded:
        return expr
    return "(" + expr + ")" + "".join(" NOT " + _fts5_phrase(t.words) for t in plan.excluded)


def highlight_terms(query: Query) -> list[str]:
    """The positive words, in query order, each once: what a UI may highlight."""
    seen: dict[str, None] = {}
    for clause in query.clauses:
        terms = clause.terms if isinstance(clause, AnyOf) else (clause,)
        for term in terms:
            if not term.negated:
                seen.update(dict.fromkeys(term.words))
    return list(seen)
