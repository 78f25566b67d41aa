"""Words as search sees them: tokenizing, stop words, the vocabulary a chunk adds, and edit distance.

Pure: the query parser, the indexer's vocabulary counts and the typo rule share these, so a word
is cut the same way when it is indexed and when it is typed.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from itertools import chain

# Word pieces are letters and digits; `_` is a separator, as it is for FTS5 unicode61 and
# PostgreSQL's parser, so a query word is never split differently from the index.
WORD = re.compile(r"[^\W_]+")
# WORD's cut of lowercased ASCII text (most records), made by str.translate and str.split, both
# in C with no match objects: what is not a lowercase letter or a digit becomes a space (callers
# lowercase first). 5,000 sentences: words cut in 11.2 ms against 15.8 with `[a-z0-9]+` (which
# had measured 24.5 against WORD's 31.7 ms, another day); the chunk's vocabulary counted in about
# 17 against 21 ms. Every ASCII character is in the table, a lowercase letter or digit as itself:
# CPython's fast path for ASCII text caches only the characters it finds there, and went slower
# with them left out.
_ASCII_SEPARATORS = str.maketrans(
    {c: c if c.isdigit() or "a" <= c <= "z" else " " for c in map(chr, range(128))}
)

# PostgreSQL's own `english` stop list (tsearch_data/english.stop), used on both databases so a
# word that PostgreSQL drops is dropped on SQLite too: stop words alone never make a hit.
_ENGLISH_STOP = """
    i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her
    hers herself it its itself they them their theirs themselves what which who whom this that these
    those am is are was were be been being have has had having do does did doing a an the and but if or
    because as until while of at by for with about against between into through during before after
    above below to from up down in out on off over under again further then once here there when where
    why how all any both each few more most other some such no nor not only own same so than too very s
    t can will just don should now
"""
STOP_WORDS = frozenset(_ENGLISH_STOP.split())

# The vocabulary (typo corrections, completions) keeps words a person would type: not stop words,
# not bare numbers, not blobs.
MAX_VOCABULARY_WORD = 32


def words(text: str) -> list[str]:
    """The lowercased words of `text`, in order."""
    return _lowered_words(text.lower())


def _lowered_words(lowered: str) -> list[str]:
    return lowered.translate(_ASCII_SEPARATORS).split() if lowered.isascii() else WORD.findall(lowered)


def fold_accents(word: str) -> str:
    """The word without its combining marks ("café" -> "cafe"), as FTS5's unicode61 reads it."""
    if word.isascii():
        return word
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


def is_vocabulary_word(word: str) -> bool:
    return 2 <= len(word) <= MAX_VOCABULARY_WORD and not word.isdigit() and word not in STOP_WORDS


def document_frequencies(texts: Iterable[str]) -> dict[str, int]:
    """For each vocabulary word, in how many of `texts` it appears (each text a record)."""
    counts = Counter(chain.from_iterable(set(_lowered_words(t)) for t in map(str.lower, texts)))
    return {w: n for w, n in counts.items() if is_vocabulary_word(w)}


def typo_budget(word: str) -> int:
    """Edits forgiven in a word of this length (Meilisearch's rule): 1 from 5 letters, 2 from 9."""
    return 2 if len(word) >= 9 else 1 if len(word) >= 5 else 0


def edit_distance(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance (a swap of neighbours is one edit), or limit + 1 past it."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    if a == b:
        return 0
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, start=1):
            cost = 0 if ca == cb else 1
            best = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                best = min(best, previous2[j - 2] + 1)
            current[j] = best
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return min(previous[-1], limit + 1)
