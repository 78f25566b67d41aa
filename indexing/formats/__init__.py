"""Document formats: detect a file's format, split it into chunks, parse a chunk into records.

Pure: no Django, no Celery. Everything here takes bytes and returns values or raises ParseError.
"""

from __future__ import annotations

from indexing.formats.detect import declared_format, detect_format
from indexing.formats.encoding import sniff_encoding, transcode_to_utf8
from indexing.formats.parse import parse_chunk, within_fields
from indexing.formats.records import ParsedRecord, ParseError, RecordError
from indexing.formats.split import FORMATS, Chunk, SplitResult, split_document

__all__ = [
    "FORMATS",
    "Chunk",
    "ParseError",
    "ParsedRecord",
    "RecordError",
    "SplitResult",
    "declared_format",
    "detect_format",
    "parse_chunk",
    "sniff_encoding",
    "split_document",
    "transcode_to_utf8",
    "within_fields",
]
