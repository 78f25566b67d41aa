"""indexing.query: parsing web-search syntax, and the strings built for FTS5 and PostgreSQL."""

from __future__ import annotations

import random
import sqlite3

import pytest

from indexing.query import (
    MAX_TERMS,
    AnyOf,
    Query,
    Term,
    highlight_terms,
    parse_query,
    to_fts5_match,
    to_websearch,
)

HOSTILE = [
    "",
    " ",
    '"',
    '""',
    '"unclosed',
    '"unclosed phrase to the end',
    "a OR OR -",
    "OR",
    "OR OR OR",
    "or",
    "-",
    "---",
    "- - -",
    "--a",
    "()",
    "(a OR b)",
    "*",
    "a*",
    "^a",
    "NEAR(a b)",
    "NEAR(a b, 3)",
    "a NOT b",
    "AND",
    "NOT",
    "col:value",
    "title:x",
    "body : y",
    "{title body}: z",
    "'single quotes'",
    "\\",
    '\\"',
    "a\x00b",
    "\x00",
    '\x00\x00"\x00',
    "é",
    "e\u0301",
    "\u0301",
    "日本語のテキスト",
    "Привет мир",
    "🎉🎉 party 🎉",
    "👍",
    "_",
    "__init__",
    "a_b",
    "²³",
    "a" * 10_000,
    "word " * 2_000,
    'a OR "b c" -"d e" OR f -g OR',
    '-"',
    '-""',
    "a -",
    "OR a",
    "a OR",
    "-a OR b",
    "a OR -b",
    '"a" "b" "',
    "%",
    "a;DROP TABLE t;--",
    "\t\n\r\f\v",
    "\u2028\u2029\u00a0",
    "\ufeffbom",
    "\ud7ff\ue000\U0010ffff",
    "lone \ud800 surrogate\udfff",
]


def words(*ws: str, negated: bool = False) -> Term:
    return Term(tuple(ws), negated)


# --- parsing -------------------------------------------------------------------------


def test_bare_words_are_anded_and_lowercased() -> None:
    assert parse_query("Quick BROWN fox") == Query((words("quick"), words("brown"), words("fox")))


def test_a_quoted_phrase_is_one_term() -> None:
    assert parse_query('"quick brown" fox') == Query((words("quick", "brown"), words("fox")))


def test_an_unclosed_quote_runs_to_the_end() -> None:
    assert parse_query('fox "quick brown') == Query((words("fox"), words("quick", "brown")))


def test_or_groups_its_neighbours() -> None:
    assert parse_query("cat OR dog") == Query((AnyOf((words("cat"), words("dog"))),))


def test_or_binds_tighter_than_the_implicit_and() -> None:
    assert parse_query("a b OR c") == Query((words("a"), AnyOf((words("b"), words("c")))))
    assert parse_query("a OR b c") == Query((AnyOf((words("a"), words("b"))), words("c")))


def test_a_chain_of_or_makes_one_group() -> None:
    assert parse_query('a OR "b c" OR d') == Query((AnyOf((words("a"), words("b", "c"), words("d"))),))


def test_lowercase_or_is_a_word() -> None:
    assert parse_query("cat or dog") == Query((words("cat"), words("or"), words("dog")))


def test_a_quoted_or_is_a_word() -> None:
    assert parse_query('cat "OR" dog') == Query((words("cat"), words("or"), words("dog")))


def test_leading_trailing_and_doubled_or_are_ignored() -> None:
    assert parse_query("OR a OR OR b OR") == Query((AnyOf((words("a"), words("b"))),))
    assert parse_query("OR") == Query(())


def test_a_dash_before_a_word_or_phrase_excludes_it() -> None:
    assert parse_query('a -b -"c d"') == Query(
        (words("a"), words("b", negated=True), words("c", "d", negated=True))
    )


def test_a_dash_alone_is_punctuation() -> None:
    assert parse_query("a - b ---") == Query((words("a"), words("b")))


def test_or_next_to_an_exclusion_is_ignored() -> None:
    assert parse_query("a OR -b") == Query((words("a"), words("b", negated=True)))
    assert parse_query("-a OR b") == Query((words("a", negated=True), words("b")))


def test_punctuation_inside_a_word_makes_a_phrase_of_its_pieces() -> None:
    assert parse_query("e-mail don't U.S.A col:value") == Query(
        (
            words("e", "mail"),
            words("don", "t"),
            words("u", "s", "a"),
            words("col", "value"),
        )
    )


def test_underscore_separates_words_like_the_fts_tokenizers_do() -> None:
    assert parse_query("foo_bar") == Query((words("foo", "bar"),))


def test_syntax_of_other_engines_is_plain_text() -> None:
    assert parse_query("NEAR(a b) x* (y)") == Query((words("near", "a"), words("b"), words("x"), words("y")))


def test_repeated_terms_count_once() -> None:
    assert parse_query("a a A OR b a OR b") == Query((words("a"), AnyOf((words("a"), words("b")))))


def test_unicode_words_survive_and_decomposed_accents_are_composed() -> None:
    assert parse_query("Café cafe\u0301 日本語 🎉") == Query((words("café"), words("日本語")))


def test_terms_beyond_the_cap_are_ignored() -> None:
    query = parse_query(" ".join(f"w{i}" for i in range(100)))
    assert len(query.clauses) == MAX_TERMS
    assert query.clauses[-1] == words(f"w{MAX_TERMS - 1}")


def test_overlong_words_are_ignored() -> None:
    assert parse_query("a " + "x" * 500) == Query((words("a"),))


def test_only_exclusions_is_empty() -> None:
    assert parse_query("-a -b").is_empty
    assert parse_query("").is_empty
    assert not parse_query("-a b").is_empty


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_input_parses(text: str) -> None:
    query = parse_query(text)
    to_fts5_match(query)
    to_websearch(query)
    highlight_terms(query)


def test_highlight_terms_lists_positive_words_once() -> None:
    query = parse_query('"Quick fox" -lazy dog OR fox')
    assert highlight_terms(query) == ["quick", "fox", "dog"]


# --- SQLite FTS5 -------------------------------------------------------------------

ROWS = {
    1: ("Quick brown fox", "jumps over the lazy dog"),
    2: ("Brown paper", "a quick note about the fox"),
    3: ("Cats", "the cat sat on the mat"),
    4: ("E-mail etiquette", "don't reply to all"),
    5: ("OR gates", "logic NOT and OR near the end"),
}


@pytest.fixture(scope="module")
def fts() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(title, body, tokenize='porter unicode61')")
    rows = [(rowid, *fields) for rowid, fields in ROWS.items()]
    db.executemany("INSERT INTO t(rowid, title, body) VALUES (?, ?, ?)", rows)
    return db


def hits(db: sqlite3.Connection, text: str) -> set[int]:
    match = to_fts5_match(parse_query(text))
    if match is None:
        return set()
    return {r for (r,) in db.execute("SELECT rowid FROM t WHERE t MATCH ?", (match,))}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("quick fox", {1, 2}),
        ('"quick brown"', {1}),
        ('"brown quick"', set()),
        ("fox -lazy", {2}),
        ('fox -"lazy dog"', {2}),
        ('fox -"dog lazy"', {1, 2}),
        ("cat OR paper", {2, 3}),
        ("brown cat OR paper", {2}),
        ("cat OR paper OR lazy", {1, 2, 3}),
        ("cats -mat", set()),
        ("fox -lazy -note", set()),
        ("e-mail", {4}),
        ("don't", {4}),
        ('"don\'t reply"', {4}),
        ("OR", set()),
        ('"OR" gates', {5}),
        ("NOT", {5}),
        ('"not" near', {5}),
        ("NEAR(logic end)", set()),
        ("title:quick", set()),
        ("-lazy", set()),
        ("QUICK", {1, 2}),
        ("jumping", {1}),
    ],
)
def test_fts5_finds_exactly_the_matching_rows(fts: sqlite3.Connection, text: str, expected: set[int]) -> None:
    assert hits(fts, text) == expected


def test_fts5_match_quotes_every_word_and_groups_or() -> None:
    assert to_fts5_match(parse_query('a "b c" OR d -e -"f g"')) == (
        '("a" AND ("b c" OR "d")) NOT "e" NOT "f g"'
    )


def test_fts5_match_is_none_without_a_positive_term() -> None:
    assert to_fts5_match(parse_query("-a -b")) is None
    assert to_fts5_match(parse_query("")) is None


@pytest.mark.parametrize("text", HOSTILE)
def test_fts5_accepts_every_hostile_input(fts: sqlite3.Connection, text: str) -> None:
    hits(fts, text)


def test_fts5_accepts_random_text(fts: sqlite3.Connection) -> None:
    rng = random.Random(20240611)
    alphabet = (
        ' "-"-OR OR NOT AND NEAR ()*:^{}+,.;\'\\\x00\t\n'
        "abcxyzABCXYZ0129_éßñ日本語Ж\u0301\u200b\u00a0🎉👍\ufeff"
    )
    for i in range(2000):
        n = rng.randint(0, 40)
        if i % 2:
            text = "".join(rng.choice(alphabet) for _ in range(n))
        else:
            text = "".join(chr(rng.randint(1, 0x2FFFF)) for _ in range(n))
            text = text.encode("utf-8", "replace").decode("utf-8", "replace")
        hits(fts, text)


# --- PostgreSQL websearch_to_tsquery -----------------------------------------------


def test_websearch_keeps_words_phrases_and_exclusions() -> None:
    assert to_websearch(parse_query('Quick "brown fox" -lazy -"old dog"')) == (
        'quick "brown fox" -lazy -"old dog"'
    )


def test_websearch_quotes_the_word_or() -> None:
    assert to_websearch(parse_query("cat or dog")) == 'cat "or" dog'


def test_websearch_writes_a_lone_or_group_as_is() -> None:
    assert to_websearch(parse_query('cat OR "big dog"')) == 'cat or "big dog"'


def test_websearch_expands_or_groups_because_postgres_binds_and_tighter() -> None:
    assert to_websearch(parse_query("a b OR c -d")) == "a b -d or a c -d"
    assert to_websearch(parse_query("a OR b c OR d")) == "a c or a d or b c or b d"


def test_websearch_expansion_is_bounded() -> None:
    query = parse_query(" ".join(f"a{i} OR b{i}" for i in range(16)))
    alternatives = to_websearch(query).split(" or ")
    assert len(alternatives) <= 64


def test_websearch_is_none_without_a_positive_term() -> None:
    assert to_websearch(parse_query("-a")) is None
    assert to_websearch(parse_query("OR -")) is None


def test_websearch_drops_punctuation_postgres_would_read_as_syntax() -> None:
    assert to_websearch(parse_query("a - b e-mail (x)")) == 'a b "e mail" x'
