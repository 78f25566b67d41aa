"""manage.py reindex --all | --document ID… | --since DATE | --format F | --failed — a backfill.

Re-processes stored documents from their stored files with the current code: one new job per
document, fed in as capacity frees (QUERN_BACKFILL_WINDOW). The previous versions stay searchable
until each new one succeeds. By default it feeds and shows progress until the backfill is done;
with --detach it leaves the feeding to `celery beat`. Stopped midway (Ctrl-C, a restart), it
resumes where it stopped: `--resume ID`, or beat carries on by itself.
"""

from __future__ import annotations

import argparse
import sys
import time

from django.core.management.base import BaseCommand, CommandError

from indexing.errors import QuernError
from indexing.models import Backfill, BackfillStatus
from indexing.pipeline import backfills
from indexing.schemas import SubmitOptions, validated


class Command(BaseCommand):
    help = "Re-index stored documents (a backfill fed within the backpressure limit); shows progress."

    def add_arguments(self, parser) -> None:
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--all", action="store_true", help="every document")
        which.add_argument("--document", type=int, nargs="+", metavar="ID", help="these document ids")
        which.add_argument(
            "--resume", type=int, metavar="BACKFILL", help="carry on feeding an earlier backfill"
        )
        parser.add_argument("--since", metavar="DATE", help="documents created on or after DATE (2026-01-31)")
        parser.add_argument(
            "--format", help="documents of this format (csv, jsonl, json, html, markdown, text)"
        )
        parser.add_argument("--failed", action="store_true", help="documents whose latest job failed")
        parser.add_argument("--chunk-size", type=int, help="records per index task for the new jobs")
        parser.add_argument(
            "--detach", action="store_true", help="start it and return; celery beat feeds the rest"
        )
        parser.add_argument(
            "--timeout", type=float, default=0, help="stop following after this many seconds (it goes on)"
        )
        parser.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)

    def handle(self, *args, **options) -> None:
        if options["resume"]:
            backfill = Backfill.objects.filter(pk=options["resume"]).first()
            if backfill is None:
                raise CommandError(f"There is no backfill {options['resume']}.")
        else:
            filters = {
                "all": options["all"],
                "ids": options["document"],
                "since": options["since"],
                "format": options["format"],
                "failed": options["failed"],
            }
            try:
                chunk_size = validated(SubmitOptions, {"chunk_size": options["chunk_size"]}).chunk_size
                backfill = backfills.start(filters, chunk_size=chunk_size)
            except QuernError as error:
                raise CommandError(error.message) from None
            self.stdout.write(f"Backfill {backfill.pk}: {backfill.total:,} document(s) to re-index.")
        if options["detach"]:
            self.stdout.write(
                "Detached: celery beat feeds the rest. Follow it in admin or /status/; "
                f"resume here with --resume {backfill.pk}."
            )
            return
        if not self.follow(backfill, options["timeout"], options["interval"]):
            sys.exit(1)

    def follow(self, backfill: Backfill, timeout: float, interval: float) -> bool:
        deadline = time.monotonic() + timeout if timeout else None
        interactive = self.stdout.isatty()
        while True:
            backfills.feed(backfill.pk)
            backfill.refresh_from_db()
            p = backfills.progress(backfill)
            line = (
                f"backfill {backfill.pk} {p['status']}: {p['submitted']:,}/{p['total']:,} started, "
                f"{p['succeeded']:,} succeeded, {p['failed']:,} failed, {p['active']:,} running"
            )
            if interactive:
                self.stdout.write("\r" + line, ending="")
                self.stdout.flush()
            if backfill.status in (BackfillStatus.DONE, BackfillStatus.CANCELLED):
                break
            if deadline and time.monotonic() > deadline:
                self.stderr.write(
                    f"\nStopped following after {timeout:g} s; resume with --resume {backfill.pk}."
                )
                return False
            time.sleep(interval)
        self.stdout.write(("\n" if interactive else "") + line)
        return p["failed"] == 0 and backfill.status == BackfillStatus.DONE
