"""indexing.query: parsing web-search syntax, and the strings built for FTS5 and PostgreSQL."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexing.query import (
    CANDIDATES,
    MAX_TERMS,
    Alternative,
    AnyOf,
    Correction,
    Group,
    Lookup,
    Query,
    Term,
    corrected_text,
    highlight_terms,
    narrow,
    parse_query,
    plan_search,
    plan_to_fts5,
    words_to_check,
)
from indexing.text import (
    WORD,
    document_frequencies,
    edit_distance,
    is_vocabulary_word,
    typo_budget,
)
from indexing.text import words as text_words

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


def words(*ws: str, negated: bool = False, quoted: bool = False) -> Term:
    return Term(tuple(ws), negated, quoted)


def phrase(*ws: str, negated: bool = False) -> Term:
    return Term(tuple(ws), negated, quoted=True)


def parsed(text: str) -> Query:
    """The clauses alone (the typed prefix has tests of its own)."""
    return Query(parse_query(text).clauses)


# --- parsing -------------------------------------------------------------------------


def test_bare_words_are_lowercased_terms() -> None:
    assert parsed("Quick BROWN fox") == Query((words("quick"), words("brown"), words("fox")))


def test_a_quoted_phrase_is_one_term() -> None:
    assert parsed('"quick brown" fox') == Query((phrase("quick", "brown"), words("fox")))


def test_an_unclosed_quote_runs_to_the_end() -> None:
    assert parsed('fox "quick brown') == Query((words("fox"), phrase("quick", "brown")))


def test_or_groups_its_neighbours() -> None:
    assert parsed("cat OR dog") == Query((AnyOf((words("cat"), words("dog"))),))


def test_or_binds_tighter_than_the_implicit_and() -> None:
    assert parsed("a b OR c") == Query((words("a"), AnyOf((words("b"), words("c")))))
    assert parsed("a OR b c") == Query((AnyOf((words("a"), words("b"))), words("c")))


def test_a_chain_of_or_makes_one_group() -> None:
    assert parsed('a OR "b c" OR d') == Query((AnyOf((words("a"), phrase("b", "c"), words("d"))),))


def test_lowercase_or_is_a_word() -> None:
    assert parsed("cat or dog") == Query((words("cat"), words("or"), words("dog")))


def test_a_quoted_or_is_a_word() -> None:
    assert parsed('cat "OR" dog') == Query((words("cat"), phrase("or"), words("dog")))


def test_leading_trailing_and_doubled_or_are_ignored() -> None:
    assert parsed("OR a OR OR b OR") == Query((AnyOf((words("a"), words("b"))),))
    assert parsed("OR") == Query(())


def test_a_dash_before_a_word_or_phrase_excludes_it() -> None:
    assert parsed('a -b -"c d"') == Query(
        (words("a"), words("b", negated=True), phrase("c", "d", negated=True))
    )


def test_a_dash_alone_is_punctuation() -> None:
    assert parsed("a - b ---") == Query((words("a"), words("b")))


def test_or_next_to_an_exclusion_is_ignored() -> None:
    assert parsed("a OR -b") == Query((words("a"), words("b", negated=True)))
    assert parsed("-a OR b") == Query((words("a", negated=True), words("b")))


def test_punctuation_inside_a_word_makes_a_phrase_of_its_pieces() -> None:
    assert parsed("e-mail don't U.S.A col:value") == Query(
        (
            words("e", "mail"),
            words("don", "t"),
            words("u", "s", "a"),
            words("col", "value"),
        )
    )


def test_underscore_separates_words_like_the_fts_tokenizers_do() -> None:
    assert parsed("foo_bar") == Query((words("foo", "bar"),))


def test_syntax_of_other_engines_is_plain_text() -> None:
    assert parsed("NEAR(a b) x* (y)") == Query((words("near", "a"), words("b"), words("x"), words("y")))


def test_repeated_terms_count_once() -> None:
    assert parsed("a a A OR b a OR b") == Query((words("a"), AnyOf((words("a"), words("b")))))


def test_unicode_words_survive_and_decomposed_accents_are_composed() -> None:
    assert parsed("Café cafe\u0301 日本語 🎉") == Query((words("café"), words("日本語")))


def test_terms_beyond_the_cap_are_ignored() -> None:
    query = parse_query(" ".join(f"w{i}" for i in range(100)))
    assert len(query.clauses) == MAX_TERMS
    assert query.clauses[-1] == words(f"w{MAX_TERMS - 1}")


def test_overlong_words_are_ignored() -> None:
    assert parsed("a " + "x" * 500) == Query((words("a"),))


def test_only_exclusions_is_empty() -> None:
    assert parse_query("-a -b").is_empty
    assert parse_query("").is_empty
    assert not parse_query("-a b").is_empty


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_input_parses(text: str) -> None:
    query = parse_query(text)
    for match_all in (False, True):
        plan_to_fts5(plan_search(query, match_all=match_all))
    highlight_terms(query)


def test_highlight_terms_lists_positive_words_once() -> None:
    query = parse_query('"Quick fox" -lazy dog OR fox')
    assert highlight_terms(query) == ["quick", "fox", "dog"]


# --- the last word, as it is typed ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "prefix"),
    [
        ("wing ti", "ti"),
        ("ti", "ti"),
        ("wing tip ", None),
        ("wing tip.", None),
        ("wing tip?", None),
        ('"wing ti', None),
        ('"wing" ti', "ti"),
        ("wing -ti", None),
        ("wing e-ma", None),
        ("wing OR", None),
        ("", None),
    ],
)
def test_the_last_word_is_a_prefix_only_while_it_is_being_typed(text: str, prefix: str | None) -> None:
    assert parse_query(text).prefix == prefix


# --- the plan ---------------------------------------------------------------------------------


def alt(*ws: str, weight: float = 1.0) -> Alternative:
    return Alternative(tuple(ws), weight)


def test_a_sentence_wants_its_words_and_requires_none_of_them() -> None:
    plan = plan_search(parse_query("what heats the wing tip ."))
    assert plan.groups == (Group((alt("heats"),)), Group((alt("wing"),)), Group((alt("tip"),)))


def test_match_all_requires_every_word() -> None:
    plan = plan_search(parse_query("what heats the wing tip ."), match_all=True)
    assert [g.required for g in plan.groups] == [True, True, True]


def test_quoted_phrases_are_required_and_exclusions_excluded_in_a_sentence() -> None:
    plan = plan_search(parse_query('heat "boundary layer" -wing'))
    assert plan.groups == (Group((alt("heat"),)), Group((alt("boundary", "layer"),), required=True))
    assert plan.excluded == (phrase("wing", negated=True),) or plan.excluded == (words("wing", negated=True),)


def test_a_word_written_with_punctuation_counts_as_its_words_in_a_sentence() -> None:
    plan = plan_search(parse_query("shock-sound interaction"))
    assert [g.alternatives for g in plan.groups] == [(alt("shock"),), (alt("sound"),), (alt("interaction"),)]
    strict = plan_search(parse_query("shock-sound interaction"), match_all=True)
    assert strict.groups[0] == Group((alt("shock", "sound"),), required=True)


def test_an_or_group_is_one_wanted_group() -> None:
    plan = plan_search(parse_query("flutter OR buffeting wing"))
    assert plan.groups[0] == Group((alt("flutter"), alt("buffeting")))


def test_stop_words_alone_plan_nothing() -> None:
    assert plan_search(parse_query("what is the of and ")).is_empty
    assert plan_search(parse_query("to be OR not to be "), match_all=True).is_empty
    assert plan_search(parse_query('"to be" OR "of the" ')).is_empty
    assert plan_search(parse_query('"the who" concert')).groups == (Group((alt("concert"),)),)


def test_a_stop_word_is_never_completed_even_half_typed() -> None:
    lookup = Lookup(completions=[("often", 40), ("office", 30)])
    assert plan_search(parse_query("the and of"), lookup=lookup).is_empty
    assert words_to_check(parse_query("wing of")) == ["wing"]


def test_a_number_being_typed_is_searched_as_it_is() -> None:
    query = parse_query("bicycle 1885")
    assert words_to_check(query) == ["bicycle"]
    plan = plan_search(query, match_all=True, lookup=Lookup(matches={"bicycle": 3}))
    assert [g.alternatives for g in plan.groups] == [(alt("bicycle"),), (alt("1885"),)]


def test_numbers_and_single_letters_are_searched_uncounted() -> None:
    query = parse_query("boeing 747 vitamin c ")
    assert words_to_check(query) == ["boeing", "vitamin"]
    plan = plan_search(query, match_all=True, lookup=Lookup(matches={"boeing": 5, "vitamin": 9}))
    assert [g.alternatives for g in plan.groups] == [
        (alt("boeing"),),
        (alt("747"),),
        (alt("vitamin"),),
        (alt("c"),),
    ]


def test_the_correction_shown_rewrites_only_the_replaced_bare_word() -> None:
    query = parse_query('wnigs -wnigs "wnigs tip" shock-wave ')
    lookup = Lookup(matches={"wnigs": 0}, close={"wnigs": [("wings", 50)]})
    plan = plan_search(query, lookup=lookup)
    assert corrected_text(query, plan) == 'wings -wnigs "wnigs tip" shock-wave'


def test_the_words_to_check_are_the_bare_words_and_the_prefix() -> None:
    assert words_to_check(parse_query('the wing "tip vortex" -flap ti')) == ["wing", "ti"]


def test_a_word_matching_nothing_is_replaced_by_its_closest_frequent_words() -> None:
    lookup = Lookup(
        matches={"aerodinamic": 0, "heating": 40},
        close={"aerodinamic": [("aerodynamic", 90), ("aerodynamics", 30), ("hydrodynamic", 50)]},
    )
    plan = plan_search(parse_query("aerodinamic heating"), lookup=lookup)
    # The nearest (one edit) of those within an 11-letter word's budget (two edits), the most
    # frequent of the nearest: "aerodynamics" is two edits away, "hydrodynamic" three.
    assert plan.groups[0] == Group((alt("aerodynamic", weight=0.5),))
    assert plan.corrections == (Correction("aerodinamic", "aerodynamic", replaced=True),)
    assert corrected_text(parse_query("aerodinamic heating"), plan) == "aerodynamic heating"


def test_a_rare_word_is_joined_by_a_far_more_frequent_close_word_below_it() -> None:
    lookup = Lookup(matches={"fluxes": 1}, close={"fluxes": [("fluxed", 5), ("flukes", 400)]})
    plan = plan_search(parse_query("fluxes"), lookup=lookup)
    assert plan.groups[0].alternatives == (alt("fluxes"), alt("flukes", weight=0.5))
    assert plan.corrections == (Correction("fluxes", "flukes", replaced=False),)
    assert corrected_text(parse_query("fluxes"), plan) is None  # nothing was replaced


def test_a_common_word_is_never_corrected() -> None:
    lookup = Lookup(matches={"wing": 50}, close={"wing": [("wind", 5000)]})
    assert plan_search(parse_query("wing"), lookup=lookup).corrections == ()


def test_the_prefix_is_completed_from_the_vocabulary_below_the_typed_word() -> None:
    lookup = Lookup(matches={"lay": 2}, completions=[("layer", 300), ("lay", 2), ("layers", 100)])
    plan = plan_search(parse_query("boundary lay"), lookup=lookup)
    assert plan.groups[1].alternatives == (alt("lay"), alt("layer", weight=0.6), alt("layers", weight=0.6))
    assert plan.completed == ("layer", "layers")


def test_typo_budget_is_one_edit_from_five_letters_and_two_from_nine() -> None:
    assert [typo_budget("x" * n) for n in (3, 4, 5, 8, 9, 12)] == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        ("wing", "wing", 0),
        ("fluid", "fliud", 1),
        ("fluid", "flud", 1),
        ("fluid", "fluids", 1),
        ("ab", "cd", 2),
    ],
)
def test_edit_distance_counts_a_swap_of_neighbours_as_one(a: str, b: str, distance: int) -> None:
    assert edit_distance(a, b, 2) == distance


def test_edit_distance_stops_past_its_limit() -> None:
    assert edit_distance("aerodynamic", "hydrostatic", 2) == 3


def test_vocabulary_counts_records_not_occurrences_and_skips_stop_words_and_numbers() -> None:
    assert document_frequencies(["Wing wing tip", "the wing 1957"]) == {"wing": 2, "tip": 1}


@settings(max_examples=500)
@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_ascii_words_are_cut_as_the_unicode_rule_cuts_them(text):
    lowered = text.lower()
    assert text_words(text) == WORD.findall(lowered)
    assert document_frequencies([text]) == {w: 1 for w in WORD.findall(lowered) if is_vocabulary_word(w)}


def test_words_of_accented_text_follow_the_unicode_rule():
    assert text_words("Café_au LAIT 2x") == ["café", "au", "lait", "2x"]
    assert document_frequencies(["Café café", "CAFÉ au"]) == {"café": 2, "au": 1}


# --- bounded candidates -------------------------------------------------------------------------


def test_a_sentence_matching_many_records_is_narrowed_to_its_rarest_words() -> None:
    plan = plan_search(parse_query("what does common mean rare"))
    counts = {"common": 500_000, "mean": 90_000, "rare": 40}
    narrowed = narrow(plan, counts, records=1_000_000, bound=CANDIDATES)
    assert narrowed.tier == (alt("rare"),)
    assert narrowed.estimate == pytest.approx(545_000, rel=0.01)


def test_a_search_matching_few_records_is_left_exact() -> None:
    plan = plan_search(parse_query("rare words"))
    assert narrow(plan, {"rare": 10, "words": 20}, records=1_000_000, bound=CANDIDATES) == plan


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


def hits(db: sqlite3.Connection, text: str, *, match_all: bool = True) -> set[int]:
    match = plan_to_fts5(plan_search(parse_query(text), match_all=match_all))
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
        ("don't", set()),  # both pieces are stop words (PostgreSQL's list): nothing to match
        ('"don\'t reply"', {4}),
        ("OR", set()),
        ('"OR" gates', {5}),
        ('"not" near', {5}),
        ("NEAR(logic end)", set()),
        ("title:quick", set()),
        ("-lazy", set()),
        ("QUICK", {1, 2}),
        ("jumping", {1}),
    ],
)
def test_every_word_finds_exactly_the_rows_holding_all(
    fts: sqlite3.Connection, text: str, expected: set[int]
) -> None:
    assert hits(fts, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("quick cat", {1, 2, 3}),
        ("lazy paper mat", {1, 2, 3}),
        ('"quick brown" cat', {1}),
        ("fox cat -lazy", {2, 3}),
        ("the of and", set()),
        ("e-mail cats", {3, 4}),
    ],
)
def test_a_sentence_finds_rows_holding_any_of_its_words(
    fts: sqlite3.Connection, text: str, expected: set[int]
) -> None:
    assert hits(fts, text, match_all=False) == expected


def test_fts5_match_quotes_every_word_and_groups_or() -> None:
    plan = plan_search(parse_query('x "b c" OR d -e -"f g"'), match_all=True)
    assert plan_to_fts5(plan) == '("x" AND ("b c" OR "d")) NOT "e" NOT "f g"'


def test_fts5_match_is_none_without_a_positive_term() -> None:
    assert plan_to_fts5(plan_search(parse_query("-a -b"))) is None
    assert plan_to_fts5(plan_search(parse_query(""))) is None


@pytest.mark.parametrize("text", HOSTILE)
def test_fts5_accepts_every_hostile_input(fts: sqlite3.Connection, text: str) -> None:
    hits(fts, text)
    hits(fts, text, match_all=False)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=60), st.booleans())
def test_fts5_accepts_any_text(text: str, match_all: bool) -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(title, body, tokenize='porter unicode61')")
    db.execute("INSERT INTO t(rowid, title, body) VALUES (1, 'quick fox', 'lazy dog')")
    hits(db, text, match_all=match_all)
