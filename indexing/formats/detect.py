"""Which format a document is in: declared, from its file name's extension, or sniffed from its head."""

from __future__ import annotations

import csv
import json
import re

from indexing.formats.compressed import without_gz
from indexing.formats.records import ParseError

_ALIASES = {
    "csv": "csv",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "jsonlines": "jsonl",
    "json": "json",
    "html": "html",
    "htm": "html",
    "markdown": "markdown",
    "md": "markdown",
    "text": "text",
    "txt": "text",
    "plain": "text",
    # MIME types
    "text/csv": "csv",
    "application/csv": "csv",
    "text/tab-separated-values": "csv",
    "application/json": "json",
    "text/json": "json",
    "application/x-ndjson": "jsonl",
    "application/ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/jsonlines": "jsonl",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/plain": "text",
}
_EXTENSIONS = {
    "csv": "csv",
    "tsv": "csv",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "json": "json",
    "html": "html",
    "htm": "html",
    "md": "markdown",
    "markdown": "markdown",
    "txt": "text",
    "text": "text",
}
_HTML_TAG = re.compile(
    r"<(?:!doctype\s+html|html|head|body|title|meta|h[1-6]|p|div|span|a|table|ul|ol|section|article|br)\b",
    re.IGNORECASE,
)
_MARKDOWN_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+\S", re.MULTILINE)


def declared_format(declared: str) -> str:
    """The format a declared name, alias or MIME type stands for ("md", "text/csv; charset=utf-8")."""
    fmt = _ALIASES.get(declared.split(";", 1)[0].strip().lower())
    if fmt is None:
        raise ParseError(
            "unknown_format",
            f"Unknown format {declared.strip()!r}. Quern reads csv, jsonl, json, html, markdown and text.",
        )
    return fmt


def detect_format(declared: str | None, filename: str | None, head: bytes) -> str:
    """The format of a document: the declared one, else its file name's extension, else sniffed
    from `head`."""
    if declared is not None and declared.strip():
        return declared_format(declared)
    if filename:
        base = without_gz(filename.replace("\\", "/").rsplit("/", 1)[-1])
        if "." in base:
            fmt = _EXTENSIONS.get(base.rsplit(".", 1)[1].lower())
            if fmt is not None:
                return fmt
    return _sniff(head)


def _sniff(head: bytes) -> str:
    text = _head_text(head)
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        return "jsonl" if _looks_like_jsonl(stripped) else "json"
    if stripped.startswith("<") and _HTML_TAG.search(text):
        return "html"
    if _MARKDOWN_HEADING.search(text):
        return "markdown"
    if _looks_like_csv(text):
        return "csv"
    return "text"


def _head_text(head: bytes) -> str:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head[: len(head) // 2 * 2].decode("utf-16", "replace")
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    return head.decode("utf-8", "replace")


def _looks_like_jsonl(text: str) -> bool:
    lines = [line for line in text.split("\n")[:50] if line.strip()][:2]
    if len(lines) < 2:
        return False
    for line in lines:
        try:
            value = json.loads(line)
        except (ValueError, RecursionError):
            return False
        if not isinstance(value, dict):
            return False
    return True


def _looks_like_csv(text: str) -> bool:
    """Two or more complete lines that all split into the same number (>1) of fields by one delimiter."""
    lines = text.split("\n")
    if len(lines) > 1:
        lines = lines[:-1]  # the last line of a head may be cut short
    lines = [line for line in lines[:20] if line.strip()]
    if len(lines) < 2:
        return False
    for delimiter in ",;\t|":
        try:
            widths = {len(row) for row in csv.reader(lines, delimiter=delimiter)}
        except csv.Error:
            continue
        if len(widths) == 1 and widths.pop() > 1:
            return True
    return False
