"""The full-text index for the database in use: a GIN index (PostgreSQL) or an FTS5 table (SQLite)."""
from django.db import migrations

FORWARD = {
    "postgresql": ["CREATE INDEX indexing_record_search_gin ON indexing_record USING gin (search)"],
    "sqlite": [
        "CREATE VIRTUAL TABLE indexing_record_fts USING fts5(title, body, tokenize='porter unicode61')",
    ],
}
BACKWARD = {
    "postgresql": ["DROP INDEX IF EXISTS indexing_record_search_gin"],
    "sqlite": ["DROP TABLE IF EXISTS indexing_record_fts"],
}


def _run(statements):
    def run(apps, schema_editor):
        for sql in statements.get(schema_editor.connection.vendor, []):
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("indexing", "0001_initial")]
    operations = [migrations.RunPython(_run(FORWARD), _run(BACKWARD))]
