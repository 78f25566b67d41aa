"""Search statistics: the live vocabulary (Term), N and total length (SearchStats), per-chunk counts."""

from django.db import migrations, models

from indexing.search import get_backend
from indexing.text import document_frequencies


# Close words for typos come from a trigram index of the vocabulary: pg_trgm (shipped with
# PostgreSQL, a trusted extension) or an FTS5 trigram table; completions from a prefix index.
VOCABULARY_FORWARD = {
    "postgresql": [
        "CREATE EXTENSION IF NOT EXISTS pg_trgm",
        "CREATE INDEX indexing_term_word_trgm ON indexing_term USING gin (word gin_trgm_ops)",
        "CREATE INDEX indexing_term_word_prefix ON indexing_term (word text_pattern_ops)",
    ],
    "sqlite": ["CREATE VIRTUAL TABLE indexing_term_trigram USING fts5(word, tokenize='trigram')"],
}
VOCABULARY_BACKWARD = {
    "postgresql": [
        "DROP INDEX IF EXISTS indexing_term_word_trgm",
        "DROP INDEX IF EXISTS indexing_term_word_prefix",
    ],
    "sqlite": ["DROP TABLE IF EXISTS indexing_term_trigram"],
}


def _run(statements):
    def run(apps, schema_editor):
        for sql in statements.get(schema_editor.connection.vendor, []):
            schema_editor.execute(sql)

    return run


def count_live_versions(apps, schema_editor):
    """An index built before this migration: count its live versions' words and totals.

    Historical models and the pure tokenizer, then the search backend's own upsert (it touches
    only the tables created above), so a later change to the models cannot break this step.
    """
    Document = apps.get_model("indexing", "Document")
    Chunk = apps.get_model("indexing", "Chunk")
    Record = apps.get_model("indexing", "Record")
    Job = apps.get_model("indexing", "Job")
    postgres = schema_editor.connection.vendor == "postgresql"
    live = list(Document.objects.exclude(live_job=None).values_list("live_job_id", flat=True))
    records = 0
    for job_id in live:
        for chunk in Chunk.objects.filter(job_id=job_id):
            rows = Record.objects.filter(
                job_id=job_id, ordinal__gte=chunk.first_ordinal, ordinal__lt=chunk.first_ordinal + chunk.units
            )
            chunk.terms = document_frequencies(f"{t} {b}" for t, b in rows.values_list("title", "body"))
            if postgres:
                with schema_editor.connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT coalesce(sum(length(search)), 0), count(*) FROM indexing_record"
                        " WHERE job_id = %s AND ordinal >= %s AND ordinal < %s",
                        [job_id, chunk.first_ordinal, chunk.first_ordinal + chunk.units],
                    )
                    chunk.length, _ = cursor.fetchone()
            chunk.save(update_fields=["terms", "length"])
        records += Record.objects.filter(job_id=job_id).count()
    if live:
        get_backend().count_terms(live, [], records=records)  # from the chunk rows saved above
        Job.objects.filter(pk__in=live).update(terms_counted=True)


class Migration(migrations.Migration):
    dependencies = [
        ("indexing", "0005_operate"),
    ]

    operations = [
        migrations.CreateModel(
            name="SearchStats",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("records", models.BigIntegerField(default=0)),
                ("length", models.BigIntegerField(default=0)),
            ],
            options={
                "verbose_name_plural": "search stats",
            },
        ),
        migrations.CreateModel(
            name="Term",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("word", models.CharField(max_length=64, unique=True)),
                ("df", models.BigIntegerField(default=0)),
                ("lexeme", models.CharField(blank=True, db_index=True, max_length=128)),
            ],
        ),
        migrations.AddField(
            model_name="chunk",
            name="length",
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="chunk",
            name="terms",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="job",
            name="terms_counted",
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(_run(VOCABULARY_FORWARD), _run(VOCABULARY_BACKWARD)),
        migrations.RunPython(count_live_versions, migrations.RunPython.noop),
    ]
