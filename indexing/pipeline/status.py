"""What the pipeline is doing now, for /status/ and GET /api/status: queues, workers, jobs, throughput."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Min, Sum
from django.db.models.functions import TruncMinute
from django.utils import timezone

from indexing import broker
from indexing.broker import monitor
from indexing.models import ACTIVE_STATUSES, Backfill, BackfillStatus, Chunk, Job, Status
from indexing.pipeline.backfills import progress
from indexing.pipeline.backpressure import waiting_work


def records_per_minute(now: datetime | None = None) -> list[dict[str, Any]]:
    """Records indexed in each of the last 60 minutes (chunks done), oldest first, zeros included."""
    now = (now or timezone.now()).replace(second=0, microsecond=0)
    start = now - timedelta(minutes=59)
    rows = (
        Chunk.objects.filter(done_at__gte=start)
        .annotate(minute=TruncMinute("done_at"))
        .values("minute")
        .annotate(records=Sum("records"))
    )
    counts = {row["minute"].replace(second=0, microsecond=0): row["records"] or 0 for row in rows}
    return [
        {
            "minute": (start + timedelta(minutes=n)).isoformat(),
            "records": counts.get(start + timedelta(minutes=n), 0),
        }
        for n in range(60)
    ]


def snapshot() -> dict[str, Any]:
    """Everything /status/ and GET /api/status show, taken at one moment."""
    now = timezone.now()
    online = monitor.workers()
    by_status = dict(Job.objects.order_by().values_list("status").annotate(n=Count("pk")))
    oldest = Job.objects.filter(status__in=ACTIVE_STATUSES).aggregate(at=Min("created_at"))["at"]
    oldest_queued = Job.objects.filter(status=Status.QUEUED).aggregate(at=Min("created_at"))["at"]
    waiting = waiting_work()
    running = Backfill.objects.filter(status__in=(BackfillStatus.RUNNING, BackfillStatus.FED)).order_by("pk")
    return {
        "at": now.isoformat(),
        "broker": "rabbitmq" if broker.is_rabbitmq() else "filesystem",
        "queues": monitor.queues(online),
        "workers": [{"name": name, **info} for name, info in online.items()],
        "jobs": {status: by_status.get(status, 0) for status in Status.values},
        "oldest_waiting_job_seconds": round((now - oldest_queued).total_seconds(), 1)
        if oldest_queued
        else None,
        "oldest_unfinished_job_seconds": round((now - oldest).total_seconds(), 1) if oldest else None,
        "waiting": {
            "jobs": waiting.jobs,
            "chunks": waiting.chunks,
            "total": waiting.total,
            "limit": settings.QUERN_MAX_WAITING,
        },
        "records_per_minute": records_per_minute(now),
        "backfills": [progress(b) for b in running[:10]],
    }
