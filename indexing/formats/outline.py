"""What a format's splitter learns about a document besides where its record units start."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Outline:
    """What a format's splitter learns besides unit starts."""

    header: list[str] | None = None
    title: str | None = None
    dialect: dict | None = None
    end: int | None = None  # end of the last unit when it is not the end of the file (JSON)
    records: list | None = None  # the one chunk's records, when the split read them too (HTML)
