"""Search statistics: the live vocabulary (Term), N and total length (SearchStats), per-chunk counts."""

from django.db import migrations, models


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
    ]
