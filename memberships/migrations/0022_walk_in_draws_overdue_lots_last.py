"""`ledger_redeem_walk_in` draws a lot already past its expiry last, as `consume_lots` does for a free
spend: such a lot holds only units the cycle boundary spared for a booked appointment's hold, and a
walk-in meanwhile spends the current cycle's units — so a no-show afterwards expires the held unit
instead of leaving the member one she never had. Same signature; the membership's cycle is read in
the statement that locks it."""

import importlib

from django.db import migrations


def _previous():
    return importlib.import_module("memberships.migrations.0019_group_search_and_redeem_location")


CREATE = _previous().CREATE.replace(
    "v_status text; v_balance bigint;", "v_status text; v_cycle integer; v_balance bigint;"
).replace(
    "SELECT m.status INTO v_status FROM memberships_membership m",
    "SELECT m.status, m.cycle_number INTO v_status, v_cycle FROM memberships_membership m",
).replace(
    "ORDER BY expires_at_cycle ASC NULLS LAST, created_at, id LIMIT 1 FOR UPDATE)",
    "ORDER BY (expires_at_cycle IS NOT NULL AND expires_at_cycle <= v_cycle), expires_at_cycle ASC NULLS LAST,\n"
    "                           created_at, id LIMIT 1 FOR UPDATE)",
)
assert CREATE.count("v_cycle") == 3, "the function's text changed: adapt this migration"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_previous().CREATE)


class Migration(migrations.Migration):
    dependencies = [("memberships", "0021_location_record_webhook_secret")]
    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
