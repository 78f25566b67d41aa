"""FastHTMLParser reports the events of Python's HTMLParser, in order, at the same positions."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexing.formats import html_tokens
from indexing.formats.html_tokens import FastHTMLParser

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


class _Recording:
    """Records every event with the position getpos() gives while it is handled."""

    def reset(self) -> None:  # HTMLParser's __init__ calls it; convert_charrefs is True by default
        super().reset()
        self.events: list[tuple] = []

    def _event(self, *event) -> None:
        self.events.append((*event, self.getpos()))

    def handle_starttag(self, tag, attrs):
        self._event("start", tag, attrs if tag in self.ATTRIBUTE_TAGS else None)

    def handle_endtag(self, tag):
        self._event("end", tag)

    def handle_startendtag(self, tag, attrs):
        self._event("startend", tag, attrs if tag in self.ATTRIBUTE_TAGS else None)

    def handle_data(self, data):
        self._event("data", data)

    def handle_comment(self, data):
        self._event("comment", data)

    def handle_decl(self, decl):
        self._event("decl", decl)

    def handle_pi(self, data):
        self._event("pi", data)

    def unknown_decl(self, data):
        self._event("unknown_decl", data)


class _Standard(_Recording, HTMLParser):
    ATTRIBUTE_TAGS = frozenset({"h2", "body"})


class _Fast(_Recording, FastHTMLParser):
    ATTRIBUTE_TAGS = frozenset({"h2", "body"})


def _events(kind: type, pieces: list[str]) -> list[tuple]:
    parser = kind()
    try:
        for piece in pieces:
            parser.feed(piece)
            parser.events.append(("fed", parser.getpos()))
        parser.close()
    except AssertionError as error:  # Python 3.11's own, on `<![x[` (indexing.formats.html mends it)
        parser.events.append(("refused", str(error), parser.getpos()))
    return parser.events


_MARKUP = st.sampled_from(
    [
        "<p>",
        "</p>",
        "<P CLASS=x>",
        "<a href=\"/x?a=1&amp;b=2\" title='t'>",
        "<a href=foo/>",
        "<a b=c/ />",
        "<br/>",
        "<br />",
        "<br/ >",
        "<img src=x alt>",
        '<div  id = "d"\n class="c" >',
        "</div >",
        "</div\n>",
        "</ div>",
        "</>",
        "</a b>",
        '<h2 id="x">',
        "</h2>",
        "<body class=b>",
        "<script>",
        "</script>",
        "<style>",
        "</style >",
        "<my-el>",
        "<a\x0bb>",
        "<a b\u00a0c>",
        '<a b="x>y">',
        "<a b==c>",
        "<!-- c -->",
        "<!--",
        "-->",
        "<![CDATA[x]]>",
        "<![x[",
        "<![ [",
        "<?pi?>",
        "<!doctype html>",
        "<!x>",
        "&amp;",
        "&#233;",
        "&#x",
        "&",
        "&am",
        "é",
        "word",
        " ",
        "\n",
        "\r\n",
        "<",
        ">",
        "/",
        "=",
        '"',
        "<h3",
        "<a",
        "</",
    ]
)


@settings(max_examples=600, deadline=None)
@given(st.lists(_MARKUP, max_size=40), st.lists(st.integers(0, 400), max_size=6))
def test_plain_and_odd_markup_in_any_pieces_gives_the_standard_events_at_the_standard_positions(markup, cuts):
    pieces = _cut("".join(markup), cuts)
    assert _events(_Fast, pieces) == _events(_Standard, pieces)


def _cut(text: str, cuts: list[int]) -> list[str]:
    """The text in pieces, cut at these offsets (fed one by one, as blocks of a file are)."""
    bounds = sorted({min(cut, len(text)) for cut in cuts})
    return [text[a:b] for a, b in zip([0, *bounds], [*bounds, len(text)], strict=True)]


def test_a_real_page_gives_the_standard_events_fed_whole_or_in_blocks():
    text = (FIXTURES / "page.html").read_text(encoding="utf-8")
    for size in (len(text), 4096, 7):
        pieces = [text[at : at + size] for at in range(0, len(text), size)]
        assert _events(_Fast, pieces) == _events(_Standard, pieces)


def test_the_fast_path_runs_on_the_python_it_was_copied_from():
    # Elsewhere it steps aside (FAST_PATH False) and the test above compares the standard parse
    # with itself; here, on the project's Python, it must be on or the speed is silently lost.
    assert html_tokens.FAST_PATH


def test_positions_stay_right_after_a_refused_marked_section_on_a_later_line():
    for pieces in (["ab\ncd<![ [x"], ["<p>\nx<![ [", "y"]):
        assert _events(_Fast, pieces) == _events(_Standard, pieces)


class _Gathering(FastHTMLParser):
    """Gathers visible text as indexing.formats.html does: `<h2>` … `</h2>` and scripts are not
    gathered, inline tags join words, other tags separate them; with the sink, or without."""

    ATTRIBUTE_TAGS = frozenset({"body"})
    SINK_HANDLED = frozenset({"h2", "script", "style"})
    SINK_JOINING = frozenset({"a", "b", "span"})

    def __init__(self, *, sink: bool) -> None:
        self.use_sink = sink
        super().__init__()
        self.text: list[str] = []
        self.hidden = 0
        self.aim()

    def aim(self) -> None:
        self.sink = self.text if self.use_sink and not self.hidden else None

    def handle_starttag(self, tag, attrs):
        if tag in self.SINK_HANDLED:
            self.hidden += 1
        elif tag not in self.SINK_JOINING:
            self.text.append(" ")
        self.aim()

    def handle_endtag(self, tag):
        if tag in self.SINK_HANDLED:
            self.hidden = max(0, self.hidden - 1)
        elif tag not in self.SINK_JOINING:
            self.text.append(" ")
        self.aim()

    def handle_data(self, data):
        if not self.hidden:
            self.text.append(data)


def _gathered_words(pieces: list[str], *, sink: bool) -> list[str] | str:
    parser = _Gathering(sink=sink)
    try:
        for piece in pieces:
            parser.feed(piece)
        parser.close()
    except AssertionError as error:  # Python 3.11's own, on `<![x[`
        return f"refused: {error}"
    return "".join(parser.text).split()


_TEXT_AROUND_TAGS = st.sampled_from(
    [
        "&am",  # an entity cut by a tag: read apart, as HTMLParser reports the texts
        "p;",
        "&amp",
        "&amp;",
        "&#23",
        "3;",
        "&#x4",
        "1;",
        "&nbsp",
        "&notin;",
        "&",
        "x",
        "word",
        " ",
        "é",
        "<b>",
        "</b>",
        "<B class=x>",
        '<a href="/x?a=1&amp;b=2">',
        "</a>",
        "<span>",
        "<spanx>",
        "</SPAN>",
        "<p>",
        "</p>",
        "<br/>",
        "<div id=d >",
        "<h2>",
        "</h2>",
        "<H2 id=x>",
        "<h2x>",
        "<script>",
        "</script>",
        "<body>",
        "<!-- c -->",
        "<![CDATA[x]]>",
        "<",
        ">",
        "\n",
        "\0",  # kept as the handlers keep it: the sink marks joins with NULs of its own
    ]
)


@settings(max_examples=600, deadline=None)
@given(st.lists(_TEXT_AROUND_TAGS, max_size=40), st.lists(st.integers(0, 400), max_size=6))
def test_text_gathered_through_the_sink_has_the_words_the_handlers_gather(markup, cuts):
    pieces = _cut("".join(markup), cuts)
    assert _gathered_words(pieces, sink=True) == _gathered_words(pieces, sink=False)


@pytest.mark.parametrize(
    ("markup", "words"),
    [
        ("<p>&am<b>p;</b> &amp<span>x</span>", ["&amp;", "&x"]),  # each text unescaped alone
        ("<p>&#23<a href=x>3;</a>&nbsp<b>;</b>", ["3;", ";"]),  # &#23 is no character; &nbsp one
        ("<p>one<br/>two<b>three</b><SPAN>four</SPAN></p>", ["one", "twothreefour"]),
        ("<p>seen<h2>hidden</h2>seen<h2x>again", ["seenseen", "again"]),
        ("<p>a\0b<b>c</b>", ["a\0bc"]),  # a NUL of the text's own is text
    ],
)
def test_the_sink_reads_entities_and_tags_as_the_handlers_do(markup, words):
    assert _gathered_words([markup], sink=True) == _gathered_words([markup], sink=False) == words


def test_a_real_page_gathers_the_same_words_through_the_sink():
    text = (FIXTURES / "page.html").read_text(encoding="utf-8")
    for size in (len(text), 4096, 7):
        pieces = [text[at : at + size] for at in range(0, len(text), size)]
        words = _gathered_words(pieces, sink=True)
        assert words == _gathered_words(pieces, sink=False) and len(words) > 10
