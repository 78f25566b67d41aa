"""manage.py ingest PATH… — submit files; --wait follows the jobs to the end."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from indexing import pipeline
from indexing.errors import QuernError
from indexing.models import Job, Source, Status
from indexing.schemas import ApiSubmitOptions, validated


class Command(BaseCommand):
    help = "Submit files to Quern (one job each); with --wait, show progress and exit 1 if a job failed."

    def add_arguments(self, parser) -> None:
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument(
            "--format", help="csv, jsonl, json, html, markdown or text (default: from the name or content)"
        )
        parser.add_argument("--encoding", help="the files' encoding if not UTF-8 (e.g. cp1252)")
        parser.add_argument("--chunk-size", type=int, help="records per index task")
        parser.add_argument(
            "--replace", type=int, help="make the (single) file a new version of this document id"
        )
        parser.add_argument("--wait", action="store_true", help="wait for the jobs to end, showing progress")
        parser.add_argument(
            "--timeout", type=float, default=0, help="with --wait: give up after this many seconds"
        )

    def handle(self, *args, **options) -> None:
        paths: list[Path] = options["paths"]
        if options["replace"] and len(paths) > 1:
            raise CommandError("--replace takes a single file.")
        try:
            submit_options = validated(
                ApiSubmitOptions,
                {name: options[name] for name in ("format", "encoding", "chunk_size", "replace")},
            )
        except QuernError as error:
            raise CommandError(f"--{(error.field or '').replace('_', '-')}: {error.message}") from None
        jobs = []
        for path in paths:
            if not path.is_file():
                raise CommandError(f"{path}: no such file.")
            try:
                with path.open("rb") as stream:
                    submitted = pipeline.submit_upload(
                        stream,
                        name=path.name,
                        size=path.stat().st_size,
                        options=submit_options,
                        source=Source.CLI,
                        replace=submit_options.replace,
                    )
            except QuernError as error:
                raise CommandError(f"{path}: {error.message}") from None
            for job in submitted:
                self.stdout.write(
                    f"{path}: job {job.pk} ({job.document.name}, {job.format}, {job.size:,} bytes)"
                )
            jobs += [job.pk for job in submitted]
        if options["wait"] and not self.wait(jobs, options["timeout"]):
            sys.exit(1)

    def wait(self, job_ids: list[int], timeout: float) -> bool:
        deadline = time.monotonic() + timeout if timeout else None
        interactive = self.stdout.isatty()
        while True:
            jobs = list(Job.objects.filter(pk__in=job_ids).select_related("document").order_by("pk"))
            finished = [j for j in jobs if j.is_finished]
            line = "  ".join(f"#{j.pk} {_bar(j.progress_percent)} {j.status}" for j in jobs)
            if interactive:
                self.stdout.write("\r" + line, ending="")
                self.stdout.flush()
            if len(finished) == len(jobs):
                break
            if deadline and time.monotonic() > deadline:
                self.stderr.write(f"\nTimed out after {timeout:g} s; the jobs go on in the background.")
                return False
            time.sleep(0.2)
        if interactive:
            self.stdout.write("")
        ok = True
        for job in jobs:
            summary = f"job {job.pk} {job.document.name}: {job.status}, {job.records_indexed:,} records"
            if job.error_count:
                summary += f", {job.error_count:,} error(s)"
            self.stdout.write(summary)
            for error in job.errors[:10]:
                where = f"line {error['line']}: " if error.get("line") else ""
                self.stdout.write(f"  {where}{error['message']}")
            ok = ok and job.status == Status.SUCCEEDED
        return ok


def _bar(percent: int, width: int = 20) -> str:
    filled = width * percent // 100
    return "[" + "#" * filled + "." * (width - filled) + f"] {percent:3d}%"
