"""Indexes for the staff member search on PostgreSQL: prefix search on the lower-cased last name
and equality on the lower-cased email (the search's other branches use existing indexes)."""

from django.db import migrations

CREATE = [
    "CREATE INDEX IF NOT EXISTS member_last_lower_like ON memberships_member "
    "(practice_id, lower(last_name) text_pattern_ops)",
    "CREATE INDEX IF NOT EXISTS member_email_lower ON memberships_member (lower(email))",
]
DROP = [
    "DROP INDEX IF EXISTS member_last_lower_like",
    "DROP INDEX IF EXISTS member_email_lower",
]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for sql in statements:
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("memberships", "0002_append_only_triggers")]

    operations = [migrations.RunPython(_run(CREATE), _run(DROP), elidable=False)]
