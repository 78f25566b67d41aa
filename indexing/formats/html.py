"""HTML: one record per section; a section starts at each <h1>..<h6> outside script and style."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from itertools import accumulate

from indexing.formats.encoding import Utf8Source, decode_chunk
from indexing.formats.html_tokens import FastHTMLParser
from indexing.formats.outline import Outline
from indexing.formats.records import ParsedRecord, RecordError

HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
# Elements whose content is never visible text.
HIDDEN = frozenset({"script", "style", "noscript", "template"})
# Inline elements do not separate words; every other tag does.
INLINE = frozenset(
    [
        "a",
        "abbr",
        "b",
        "bdi",
        "bdo",
        "cite",
        "code",
        "data",
        "dfn",
        "em",
        "font",
        "i",
        "kbd",
        "mark",
        "q",
        "s",
        "samp",
        "small",
        "span",
        "strong",
        "sub",
        "sup",
        "time",
        "tt",
        "u",
        "var",
        "wbr",
    ]
)


# The tags the handlers look at beyond "separates words or not"; the others (nearly all of a
# page's tags) take a short path.
SPECIAL = HIDDEN | {"head", "body", "title"} | set(HEADINGS)


class _Visibility(FastHTMLParser):
    """Tracks whether the parser is in hidden content (script, style, …, or <head>)."""

    # Headings' ids (attributes) and <body>'s own text (get_starttag_text) are read.
    ATTRIBUTE_TAGS = frozenset(HEADINGS) | {"body"}

    def __init__(self) -> None:
        super().__init__()
        self.hidden = 0  # depth of open HIDDEN elements
        self.in_head = False
        self.in_title = False
        self.visible = True  # none of the three: kept up to date, as it is read for every text

    def track_start(self, tag: str) -> None:
        if tag in HIDDEN:
            self.hidden += 1
        elif tag == "head":
            self.in_head = True
        elif tag == "body":
            self.in_head = False
        elif tag == "title":
            self.in_title = True
        self.visible = not (self.hidden or self.in_head or self.in_title)

    def track_end(self, tag: str) -> None:
        if tag in HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag == "head":
            self.in_head = False
        elif tag == "title":
            self.in_title = False
        self.visible = not (self.hidden or self.in_head or self.in_title)

    def parse_marked_section(self, i: int, report: int = 1) -> int:
        # HTML reads `<![…` outside SVG and MathML as a bogus comment that ends at the next `>`;
        # Python 3.11's parser raises AssertionError on a keyword it does not know (`<![diagram[`,
        # found by the fuzzer). -1: not ended yet, wait for more input (at the end it is text).
        position = self.lineno, self.offset  # the refusal moved them on; goahead moves them again
        try:
            return super().parse_marked_section(i, report)
        except AssertionError:
            self.lineno, self.offset = position
            end = self.rawdata.find(">", i + 3)
            return -1 if end < 0 else end + 1


class _Outliner(_Visibility):
    """Finds section starts while the file streams through; positions come back as bytes."""

    def __init__(self, start: int) -> None:
        super().__init__()
        self.blocks: deque[_Block] = deque()
        self.preface = (start, 1)  # (byte, line) where text before the first heading starts
        self.preface_text = False
        self.seen_heading = False
        self.starts: list[tuple[int, int]] = []
        self.title: list[str] | None = None  # the first <title>'s text
        self.title_done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in SPECIAL:
            return
        self.track_start(tag)
        if tag == "title" and self.title is None:
            self.title = []
        elif tag == "body" and not self.seen_heading:
            line, col = self.getpos()
            byte = self.byte_at(line, col)
            text = self.get_starttag_text() or ""
            self.preface = (byte + len(text.encode("utf-8")), line + text.count("\n"))
            self.preface_text = False
        elif tag in HEADINGS and self.visible:
            line, col = self.getpos()
            if not self.seen_heading:
                self.seen_heading = True
                if self.preface_text:
                    self.starts.append(self.preface)
            self.starts.append((self.byte_at(line, col), line))

    def handle_endtag(self, tag: str) -> None:
        if tag not in SPECIAL:
            return
        self.track_end(tag)
        if tag == "title" and self.title is not None:
            self.title_done = True

    def handle_data(self, data: str) -> None:
        if self.in_title:
            if not self.title_done:
                self.title.append(data)
        elif not self.seen_heading and self.visible and data.strip():
            self.preface_text = True

    def records(self) -> list[ParsedRecord] | None:
        """The one chunk's records, when this pass read them (see _OnePass)."""
        return None

    def byte_at(self, line: int, col: int) -> int:
        """The byte offset of HTMLParser's (line, column-in-characters) position."""
        for block in reversed(self.blocks):
            if block.line <= line:
                return block.byte_at(line, col)
        # Blocks are dropped only once the parser's position has passed them.
        raise AssertionError(f"position {line}:{col} is before the blocks kept")


class _Block:
    def __init__(self, offset: int, line: int, data: bytes) -> None:
        self.offset, self.line, self.data = offset, line, data
        # For each line, where it would start if the block had no newlines: the lengths of the
        # lines before it, summed (a line's start is that plus one newline per line before it).
        self.starts_without_newlines: list[int] | None = None
        self.lines = data.count(b"\n") + 1

    def byte_at(self, line: int, col: int) -> int:
        if self.starts_without_newlines is None:
            # Sums made in C: a Python loop over the block's newlines was a seventh of parsing.
            self.starts_without_newlines = list(accumulate(map(len, self.data.split(b"\n")), initial=0))
        index = line - self.line
        start = self.starts_without_newlines[index] + index
        text = self.data[start : start + 4 * col]  # a character is at most 4 bytes
        if text.isascii():
            return self.offset + start + col
        return self.offset + start + len(text.decode("utf-8", "ignore")[:col].encode("utf-8"))


def split_units(source: Utf8Source, outline: Outline) -> Iterator[tuple[int, int]]:
    """Yield (byte, line) of each section; the text before the first heading counts if visible."""
    yield from _outline(source, outline, _Outliner)


def split_and_parse_units(source: Utf8Source, outline: Outline) -> Iterator[tuple[int, int]]:
    """split_units, reading the sections' text in the same pass: outline.records holds them
    once the units are out (None when the one pass cannot tell; then parse the chunk).

    For a small document read whole (a batch's): parsing HTML twice, once for where its
    sections start and once for their text, was two thirds of a web page's time in a batch.
    """
    yield from _outline(source, outline, _OnePass)


def _outline(source: Utf8Source, outline: Outline, kind: type[_Outliner]) -> Iterator[tuple[int, int]]:
    outliner: _Outliner | None = None
    for offset, line, block in source.blocks():
        if outliner is None:
            outliner = kind(offset)
        outliner.blocks.append(_Block(offset, line, block))
        outliner.feed(block.decode("utf-8"))
        yield from outliner.starts
        outliner.starts.clear()
        current = outliner.getpos()[0]
        while len(outliner.blocks) > 1 and outliner.blocks[1].line <= current:
            outliner.blocks.popleft()
    if outliner is None:
        return
    outliner.close()
    yield from outliner.starts
    if not outliner.seen_heading and outliner.preface_text:
        yield outliner.preface
    if outliner.title is not None:
        title = " ".join("".join(outliner.title).split())
        outline.title = title or None
    outline.records = outliner.records()


class _Collector:
    """The sections' side of the handlers, once visibility is tracked (_Sections, _OnePass).

    While visible text is only being gathered into the current parts, those parts are the
    tokenizer's sink: its plain tags and text then skip the handlers (most of a page's tokens;
    its handler calls were a fifth of parsing, profiled on the corpus pages).
    """

    SINK_HANDLED = SPECIAL
    SINK_JOINING = INLINE
    visible: bool
    sink: list[str] | None

    def start_collecting(self) -> None:
        # [level, key, title parts, body parts]; the first is the text before any heading
        self.sections: list[list] = [[0, None, [], []]]
        self.heading: str | None = None  # the open heading tag
        self.parts = self.sections[0][3]  # the heading's parts while one is open, else the body's

    def collect_start(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in HEADINGS and self.visible:
            key = dict(attrs).get("id") or None
            self.sections.append([HEADINGS[tag], key, [], []])
            self.heading = tag
            self.parts = self.sections[-1][2]
        else:
            self.parts.append(" ")

    def collect_end(self, tag: str) -> None:
        if tag == self.heading:
            self.heading = None
            self.parts = self.sections[-1][3]
        else:
            self.parts.append(" ")


class _OnePass(_Collector, _Outliner):
    """An outliner that also collects what _Sections would read from the document's one chunk.

    That chunk starts at the first unit: after the last <body> tag before the first heading, or
    at the start. The collector starts over at each such <body>, as a parser of the chunk would
    start there, unless it is inside hidden content or a <title> there (a parser of the chunk
    alone would not be), or a BOM follows it (the chunk's parse drops one at its start): then
    `same_as_chunk` is False and the chunk is parsed on its own.

    The collector's state lives here, beside the outliner's: visibility follows the same events
    in both, so it is tracked once (the handlers run for each of a page's tags and texts).
    """

    def __init__(self, start: int) -> None:
        super().__init__(start)
        self.start_collecting()
        self.same_as_chunk = True

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in SPECIAL:
            if tag not in INLINE:
                self.parts.append(" ")
            return
        seen_heading = self.seen_heading
        super().handle_starttag(tag, attrs)
        self.collect_start(tag, attrs)
        if tag == "body" and not seen_heading:
            if self.hidden or self.in_title or self.heading:
                self.same_as_chunk = False
            self.sections = [[0, None, [], []]]
            self.parts = self.sections[0][2 if self.heading else 3]
        self.aim_sink()

    def handle_endtag(self, tag: str) -> None:
        if tag not in SPECIAL:
            if tag not in INLINE:
                self.parts.append(" ")
            return
        super().handle_endtag(tag)
        self.collect_end(tag)
        self.aim_sink()

    def aim_sink(self) -> None:
        # Before the first heading, text also tells the outliner about the preface (and a BOM).
        self.sink = self.parts if self.visible and self.seen_heading else None

    def handle_data(self, data: str) -> None:
        if self.seen_heading:  # the outliner's part is done, but for the title
            if self.in_title and not self.title_done:
                self.title.append(data)
            elif self.visible:
                self.parts.append(data)
            return
        if data.startswith("\ufeff"):
            self.same_as_chunk = False  # the chunk's parse drops a BOM where the chunk starts
        super().handle_data(data)
        if self.visible:
            self.parts.append(data)

    def records(self) -> list[ParsedRecord] | None:
        return _records(self.sections, 0) if self.same_as_chunk else None


class _Sections(_Collector, _Visibility):
    """Collects each section's heading text, visible body text, level and id."""

    def __init__(self) -> None:
        super().__init__()
        self.start_collecting()
        self.aim_sink()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in SPECIAL:
            if tag not in INLINE:
                self.parts.append(" ")
            return
        self.track_start(tag)
        self.collect_start(tag, attrs)
        self.aim_sink()

    def handle_endtag(self, tag: str) -> None:
        if tag not in SPECIAL:
            if tag not in INLINE:
                self.parts.append(" ")
            return
        self.track_end(tag)
        self.collect_end(tag)
        self.aim_sink()

    def aim_sink(self) -> None:
        self.sink = self.parts if self.visible else None

    def handle_data(self, data: str) -> None:
        if self.visible:
            self.parts.append(data)


def parse_sections(
    data: bytes, *, first_ordinal: int, first_line: int
) -> tuple[list[ParsedRecord], list[RecordError]]:
    """Parse one chunk: a record per section (visible text only, whitespace collapsed)."""
    parser = _Sections()
    parser.feed(decode_chunk(data, first_line))
    parser.close()
    return _records(parser.sections, first_ordinal), []


def _records(sections: list[list], first_ordinal: int) -> list[ParsedRecord]:
    preface = sections[0]
    # The text before the first heading is a unit only when it shows some text, as in split_units.
    if not any(part.strip() for part in preface[3]):
        sections = sections[1:]
    records = []
    for ordinal, (level, key, title_parts, body_parts) in enumerate(sections, first_ordinal):
        title = " ".join("".join(title_parts).split())
        body = " ".join("".join(body_parts).split())
        if title or body:
            records.append(ParsedRecord(ordinal, key or str(ordinal), title, body, {"level": level}))
    return records
