"""PostgreSQL: search by name fragment across a group's practices through a trigram index, and the
walk-in redemption function writing where the redemption happened.

- `pg_trgm` and a GIN trigram index on `memberships_member.search_name` ("first last", lower-cased):
  a name fragment anywhere in the name (`search_name LIKE '%ana gar%'`) is an index lookup instead
  of a scan of every member of the group. SQLite keeps its prefix search (no index here).
- `ledger_redeem_walk_in` takes the location of the staff member who redeems (p_location, NULL when
  unknown) and writes it on the ledger entry, as the Python path does (`LedgerEntry.location`). The
  twelve-argument version of migration 0007 is dropped: one function, one signature."""

import importlib

from django.db import migrations

TRIGRAM = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS member_search_name_trgm ON memberships_member USING gin (search_name gin_trgm_ops)",
]
NO_TRIGRAM = ["DROP INDEX IF EXISTS member_search_name_trgm"]

CREATE = r"""
CREATE OR REPLACE FUNCTION ledger_redeem_walk_in(
    p_membership bigint, p_member bigint, p_practice bigint, p_service bigint, p_quantity bigint, p_key text,
    p_actor_type text, p_actor_user integer, p_actor_label text, p_reason text, p_summary text,
    p_now timestamptz, p_location bigint)
RETURNS TABLE (r_entry bigint, r_balance bigint, r_lot bigint, r_event bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_status text; v_balance bigint; v_lot bigint; v_entry bigint; v_event bigint;
BEGIN
    -- The caller checked that member, practice and service belong together (none of them moves),
    -- and that the tier may be redeemed at p_location.
    SELECT m.status INTO v_status FROM memberships_membership m
     WHERE m.id = p_membership AND m.member_id = p_member FOR UPDATE;
    IF NOT FOUND OR v_status <> 'active' THEN
        RAISE EXCEPTION 'not a plain walk-in' USING ERRCODE = 'LDG01';
    END IF;
    UPDATE memberships_entitlementbalance SET balance = balance - p_quantity
     WHERE membership_id = p_membership AND service_id = p_service AND balance - reserved >= p_quantity
    RETURNING balance INTO v_balance;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'not enough available' USING ERRCODE = 'LDG02';
    END IF;
    UPDATE memberships_creditlot SET remaining = remaining - p_quantity
     WHERE id = (SELECT id FROM memberships_creditlot
                  WHERE membership_id = p_membership AND service_id = p_service AND remaining > 0
                  ORDER BY expires_at_cycle ASC NULLS LAST, created_at, id LIMIT 1 FOR UPDATE)
       AND remaining >= p_quantity
    RETURNING id INTO v_lot;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'spans several lots' USING ERRCODE = 'LDG03';
    END IF;
    INSERT INTO memberships_ledgerentry (membership_id, service_id, kind, source, quantity, frozen_quantity,
        balance_after, lot_id, reverses_id, cycle_key, actor_type, actor_user_id, actor_label, reason, dispute,
        location_id, idempotency_key, created_at)
    VALUES (p_membership, p_service, 'redeem', '', -p_quantity, 0, v_balance, v_lot, NULL, '', p_actor_type,
        p_actor_user, p_actor_label, p_reason, false, p_location, p_key, p_now)
    RETURNING id INTO v_entry;
    INSERT INTO memberships_event (practice_id, member_id, membership_id, kind, summary, payload, actor_type,
        actor_user_id, created_at)
    VALUES (p_practice, p_member, p_membership, 'redeemed', p_summary,
        jsonb_build_object('entry_id', v_entry, 'service_id', p_service, 'quantity', p_quantity,
                           'balance_after', v_balance),
        p_actor_type, p_actor_user, p_now)
    RETURNING id INTO v_event;
    RETURN QUERY SELECT v_entry, v_balance, v_lot, v_event;
END
$fn$;
"""
DROP = ("DROP FUNCTION IF EXISTS ledger_redeem_walk_in(bigint, bigint, bigint, bigint, bigint, text, text, integer, "
        "text, text, text, timestamptz, bigint);")


def _first_version():
    return importlib.import_module("memberships.migrations.0007_redeem_walk_in_function")


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for sql in TRIGRAM:
        schema_editor.execute(sql)
    schema_editor.execute(_first_version().DROP)
    schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for sql in NO_TRIGRAM:
        schema_editor.execute(sql)
    schema_editor.execute(DROP)
    schema_editor.execute(_first_version().CREATE)


class Migration(migrations.Migration):
    dependencies = [("memberships", "0018_tier_location_prices_and_group_catalogue")]
    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
