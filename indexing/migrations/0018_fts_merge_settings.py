"""SQLite: FTS5 merges its segments less often while chunks are written (automerge 16, crisismerge 64).

Every chunk's commit flushes a new segment, and at FTS5's defaults (automerge 4, crisismerge 16)
each write also merges older segments four at a time, so a million records were merged again and
again. Measured on sentences.csv's 1,017,780 records written 5,000 per transaction: 7.97 s at the
defaults, 6.35 s at these; searches for the bench's 30 queries took the same (p50 10.8 and 10.3
ms, p95 33.8 and 32.3 ms). The settings live in the FTS table's own config, so one migration sets
them for every connection.
"""

from django.db import migrations

FTS_TABLE = "indexing_record_fts"


def _merge_settings(automerge: int, crisismerge: int):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "sqlite":
            for name, value in (("automerge", automerge), ("crisismerge", crisismerge)):
                schema_editor.execute(
                    f"INSERT INTO {FTS_TABLE} ({FTS_TABLE}, rank) VALUES (%s, %s)", [name, value]
                )

    return run


class Migration(migrations.Migration):
    dependencies = [("indexing", "0017_term_fillfactor")]

    operations = [migrations.RunPython(_merge_settings(16, 64), _merge_settings(4, 16))]
