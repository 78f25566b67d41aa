"""manage.py createkey --scope S [--scope S …] [--expires 30d | 2027-01-31] [--name N] — a new API
key, printed once (only its SHA-256 is stored)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from indexing import access
from indexing.errors import QuernError
from indexing.models import Scope

DURATION = re.compile(r"^(\d+)([hdw])$")
UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def expiry(text: str | None) -> datetime | None:
    """'30d', '12h', '2w', or a date / date-time in ISO form (UTC unless it says otherwise)."""
    if not text:
        return None
    if match := DURATION.match(text.strip()):
        return timezone.now() + timedelta(**{UNITS[match[2]]: int(match[1])})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(
            f"--expires {text!r}: give a duration (30d, 12h, 2w) or a date (2027-01-31)."
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = "Make an API key with the given scopes; it is shown once."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--scope",
            action="append",
            required=True,
            choices=Scope.values,
            help="what the key may do (repeat for several): " + ", ".join(Scope.values),
        )
        parser.add_argument(
            "--expires", help="a duration (30d, 12h, 2w) or a date (2027-01-31); default never"
        )
        parser.add_argument("--name", default="", help="who or what uses it")

    def handle(self, *args, **options) -> None:
        expires_at = expiry(options["expires"])
        if expires_at is not None and expires_at <= timezone.now():
            raise CommandError(f"--expires {options['expires']!r} is in the past.")
        try:
            row, key = access.create_key(
                options["name"] or "created with manage.py createkey", options["scope"], expires_at
            )
        except QuernError as error:
            raise CommandError(error.message) from None
        self.stdout.write(key)
        when = f"expires {row.expires_at:%Y-%m-%d %H:%M} UTC" if row.expires_at else "never expires"
        self.stderr.write(
            f"API key {row.prefix}… ({', '.join(row.scopes)}; {when}). It is shown this once: keep it now. "
            "Send it as 'Authorization: Bearer <key>'."
        )
