"""Python's HTMLParser, with a fast path for the plain tags that make up most of a page.

Profiled on the 2,391 corpus web pages, html.parser spent more than half of its time on the
machinery of each tag: `check_for_whole_start_tag`, the attribute loop, and `updatepos`
counting lines after every token. Most tags are plain (`<p>`, `<a href="…">`, `</div>`), and
their events need none of that. `FastHTMLParser.goahead` is the standard library's goahead
(Python 3.11), token for token, with three changes:

- text and the plain tag after it (`_TEXT_AND_PLAIN_TAG`, one regular expression match for
  both) are reported at once, the tag with no attributes: a subclass that reads attributes
  names its tags in `ATTRIBUTE_TAGS`, and those go through the standard parse, as does every
  tag the plain patterns do not match;
- the line and column (`getpos`) are counted only when asked for, or before a standard
  method runs (they may move or read them);
- while a subclass holds a `sink` (a list), a run of text and plain tags whose handlers would
  only gather text is read at once, by regular expressions, with no handler call: its text goes
  into the sink, and each tag that separates words leaves a space in its place (one, where the
  handlers would leave one or two: the gathered text's whitespace is collapsed). A run ends at a
  tag whose handlers move or drop the sink (`SINK_HANDLED`), at a tag that takes the standard
  path (`ATTRIBUTE_TAGS`, and the raw-text elements such as `<script>` and `<style>`), at text
  holding a NUL, or at any token the plain patterns do not match.

The patterns match only what the standard parse reads the same way (the same tag name, the
same end), so the events, their order and their positions are those of HTMLParser; a test
feeds both the same random markup in random pieces and compares every event.
"""

from __future__ import annotations

import hashlib
import inspect
import re
from html import unescape
from html.parser import HTMLParser

# The standard goahead this one copies (Python 3.11.7's). Later patch releases rewrote it (the
# fix of CVE-2025-6069, quadratic time on unterminated tags); under any other version the fast
# path steps aside and the standard parse runs as it is, its fixes with it.
_COPIED_GOAHEAD = "482555522333534ed0d5c112fe13d0d76732a1c38a94d9dcf3f8c228b8678233"


def _standard_goahead_is_the_copied_one() -> bool:
    try:
        source = inspect.getsource(HTMLParser.goahead)
    except (OSError, TypeError):
        return False
    return hashlib.sha256(source.encode()).hexdigest() == _COPIED_GOAHEAD


FAST_PATH = _standard_goahead_is_the_copied_one()

# Whitespace as the standard tag-name pattern stops at it (`\s` would also take \x0b and
# Unicode spaces, which the name pattern does not stop at).
_WS = "[ \t\n\r\f]"
_ATTRIBUTE = (
    rf"{_WS}+[a-zA-Z_:][-a-zA-Z0-9_:.]*"
    rf"(?:{_WS}*={_WS}*(?:\"[^\"<>]*\"|'[^'<>]*'|[-a-zA-Z0-9_.:/#%+?;,!~@$()*]+))?"
)
_PLAIN_START = rf"<([a-zA-Z][a-zA-Z0-9]*)(?:{_ATTRIBUTE})*{_WS}*(/?)>"
_PLAIN_END = rf"</([a-zA-Z][a-zA-Z0-9]*){_WS}*>"
# The text up to the next `<` (possessive: no backtracking into it), then a plain tag: one
# match per token. Groups: 1 text, 2 start tag name, 3 "/" of <…/>, 4 end tag name.
_TEXT_AND_PLAIN_TAG = re.compile(rf"([^<]*+)(?:{_PLAIN_START}|{_PLAIN_END})")
_AMPERSAND_END = re.compile(r"[\s;]")
_CHARREF = re.compile("&#(?:[0-9]+|[xX][0-9a-fA-F]+)[^0-9a-fA-F]")
_ENTITYREF = re.compile("&([a-zA-Z][-.a-zA-Z0-9]*)[^a-zA-Z0-9]")
_INCOMPLETE = re.compile("&[a-zA-Z#]")
_STARTTAGOPEN = re.compile("<[a-zA-Z]")


def _any_of_names(names: frozenset[str]) -> str:
    """A pattern for a whole tag name among `names`, in any letter case, shaped as a tree of
    their letters: the engine tries one branch per letter, not every name in turn at every tag
    (over the corpus pages: finding runs 1.02 -> 0.85 s, their joining tags 0.87 -> 0.75 s)."""

    def tree(suffixes: list[str]) -> str:
        branches: dict[str, list[str]] = {}
        for suffix in suffixes:
            if suffix:
                branches.setdefault(suffix[0], []).append(suffix[1:])
        alternatives = [_either_case(c) + tree(rest) for c, rest in sorted(branches.items())]
        if not alternatives:
            return ""
        pattern = f"(?:{'|'.join(alternatives)})"
        return f"{pattern}?" if "" in suffixes else pattern

    return rf"{tree(sorted(names))}(?![a-zA-Z0-9])"


def _either_case(c: str) -> str:
    return f"[{c}{c.upper()}]" if c.isalpha() else re.escape(c)


def _sink_run(handled: frozenset[str]):
    """A run of text and plain tags, none named in `handled`: (text, tag)+, possessive. Text
    holding a NUL ends a run (the standard path reads it): `_gathered` marks joins with NULs."""
    other = rf"(?!{_any_of_names(handled)})" if handled else ""
    start = rf"<{other}[a-zA-Z][a-zA-Z0-9]*(?:{_ATTRIBUTE})*{_WS}*/?>"
    end = rf"</{other}[a-zA-Z][a-zA-Z0-9]*{_WS}*>"
    return re.compile(rf"(?:[^<\0]*+(?:{start}|{end}))++").match


def _joining_tag(joining: frozenset[str]):
    # Inside a run, `<` only starts a plain tag and its first `>` ends it (text has no `<`, a
    # plain tag's quoted values neither `<` nor `>`).
    return re.compile(rf"</?{_any_of_names(joining)}[^>]*>" if joining else "(?!)").sub


_ANY_TAG_IN_RUN = re.compile("<[^>]*>").sub


def _gathered(run: str, joining_tag) -> str:
    """A run's text as the handlers gather it: each text unescaped, a space for a tag that
    separates words. A joining tag leaves a NUL (a run holds none of its own: `_sink_run` stops
    before text with one) until the text is unescaped, so the texts on either side of it are
    unescaped apart, as HTMLParser reports them. html.unescape's name pattern does run on across
    a NUL, but no entity's name holds one, so only a name ending before the NUL can match: what
    it reads is what it would read in the text before the tag alone."""
    text = _ANY_TAG_IN_RUN(" ", joining_tag("\0", run))
    if "&" in text:
        text = unescape(text)
    return text.replace("\0", "") if "\0" in text else text


class FastHTMLParser(HTMLParser):
    """HTMLParser (convert_charrefs=True), reporting plain tags without their attributes."""

    # Tags whose handlers read their attributes or get_starttag_text(), and the tags whose
    # content the standard parse reads as raw text: these always take the standard path.
    ATTRIBUTE_TAGS: frozenset[str] = frozenset()
    # With a sink: the tags whose handlers still run (they change what is gathered, or where),
    # and the tags that do not separate words (no space in the sink).
    SINK_HANDLED: frozenset[str] = frozenset()
    SINK_JOINING: frozenset[str] = frozenset()

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        handled = cls.SINK_HANDLED | cls.ATTRIBUTE_TAGS | frozenset(cls.CDATA_CONTENT_ELEMENTS)
        cls._sink_run = staticmethod(_sink_run(handled))
        cls._joining_tag = staticmethod(_joining_tag(cls.SINK_JOINING))

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def reset(self) -> None:
        super().reset()
        self._synced = 0  # the index of rawdata that lineno and offset describe
        self._at = 0  # the index of rawdata where the event being handled starts
        # Where text goes without a handler call, while the handlers would only gather it there.
        self.sink: list[str] | None = None

    def getpos(self) -> tuple[int, int]:
        self._sync(self._at)
        return self.lineno, self.offset

    def _sync(self, i: int) -> None:
        if i > self._synced:
            self.updatepos(self._synced, i)
        self._synced = i

    def _standard(self, i: int) -> None:
        """Before a standard method runs at i: positions up to date, as it expects them."""
        self._sync(i)
        self._at = i

    def goahead(self, end: bool) -> None:  # noqa: C901 — the standard library's, kept whole
        if not FAST_PATH:
            super().goahead(end)
            return
        rawdata = self.rawdata
        i = 0
        n = len(rawdata)
        startswith = rawdata.startswith
        standard = self.ATTRIBUTE_TAGS | set(self.CDATA_CONTENT_ELEMENTS)
        sink_run, joining_tag = self._sink_run, self._joining_tag
        text_and_plain_tag = _TEXT_AND_PLAIN_TAG.match
        find = rawdata.find
        while i < n:
            if not self.cdata_elem:
                # The fast path: text and a plain tag, the same events as the steps below.
                while True:
                    if self.sink is not None and (run := sink_run(rawdata, i)):
                        self.sink.append(_gathered(run[0], joining_tag))
                        i = run.end()
                    match = text_and_plain_tag(rawdata, i)
                    if not match:
                        break
                    text, name, close, end_name = match.groups()
                    tag = (name or end_name).lower()
                    if tag in standard:
                        break  # the steps below read it (its text with it)
                    if text:
                        self._at = i
                        self.handle_data(unescape(text))
                        i = match.end(1)
                    self._at = i
                    if end_name is not None:
                        self.handle_endtag(tag)
                    elif close:
                        self.handle_startendtag(tag, [])
                    else:
                        self.handle_starttag(tag, [])
                    i = match.end()
                if i >= n:
                    break
                j = find("<", i)
                if j < 0:
                    # A charref may be cut in half at the end: wait for more, as HTMLParser does.
                    amppos = rawdata.rfind("&", max(i, n - 34))
                    if amppos >= 0 and not _AMPERSAND_END.search(rawdata, amppos):
                        break
                    j = n
            else:
                match = self.interesting.search(rawdata, i)
                if match:
                    j = match.start()
                else:
                    break  # in script or style: wait for its end tag
            if i < j:
                self._at = i
                if not self.cdata_elem:
                    self.handle_data(unescape(rawdata[i:j]))
                else:
                    self.handle_data(rawdata[i:j])
            i = j
            if i == n:
                break
            if startswith("<", i):
                self._standard(i)
                if _STARTTAGOPEN.match(rawdata, i):
                    k = self.parse_starttag(i)
                elif startswith("</", i):
                    k = self.parse_endtag(i)
                elif startswith("<!--", i):
                    k = self.parse_comment(i)
                elif startswith("<?", i):
                    k = self.parse_pi(i)
                elif startswith("<!", i):
                    k = self.parse_html_declaration(i)
                elif (i + 1) < n:
                    self.handle_data("<")
                    k = i + 1
                else:
                    break
                if k < 0:
                    if not end:
                        break
                    k = find(">", i + 1)
                    if k < 0:
                        k = find("<", i + 1)
                        if k < 0:
                            k = i + 1
                    else:
                        k += 1
                    if not self.cdata_elem:
                        self.handle_data(unescape(rawdata[i:k]))
                    else:
                        self.handle_data(rawdata[i:k])
                i = k
            elif startswith("&#", i):
                self._standard(i)
                match = _CHARREF.match(rawdata, i)
                if match:
                    self.handle_charref(match.group()[2:-1])
                    k = match.end()
                    if not startswith(";", k - 1):
                        k = k - 1
                    i = k
                    continue
                if ";" in rawdata[i:]:  # bail by consuming &#
                    self.handle_data(rawdata[i : i + 2])
                    i = i + 2
                break
            elif startswith("&", i):
                self._standard(i)
                match = _ENTITYREF.match(rawdata, i)
                if match:
                    self.handle_entityref(match.group(1))
                    k = match.end()
                    if not startswith(";", k - 1):
                        k = k - 1
                    i = k
                    continue
                match = _INCOMPLETE.match(rawdata, i)
                if match:
                    if end and match.group() == rawdata[i:]:
                        i = i + 1
                    break
                elif (i + 1) < n:
                    self.handle_data("&")
                    i = i + 1
                else:
                    break
            else:
                raise AssertionError("interesting.search() lied")
        if end and i < n and not self.cdata_elem:
            self._at = i
            self.handle_data(unescape(rawdata[i:n]))
            i = n
        self._sync(i)
        self.rawdata = rawdata[i:]
        self._synced = self._at = 0
