"""On PostgreSQL the database itself refuses UPDATE and DELETE on the append-only tables."""

from django.db import migrations

TABLES = ["memberships_ledgerentry", "memberships_lotmovement", "memberships_event", "memberships_auditlog"]

FUNCTION = """
CREATE OR REPLACE FUNCTION medspa_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTION, params=None)
    for table in TABLES:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION medspa_append_only()"
        )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")


class Migration(migrations.Migration):
    dependencies = [("memberships", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
