"""PostgreSQL: the common walk-in redemption in one round trip (see memberships.services.walk_in).

The function only does what the Python service would do for an ACTIVE membership spending from a
single lot; anything else raises LDG01/LDG02/LDG03 and the caller takes the ordinary locked path,
which decides and words the outcome. A replayed key raises the entries' unique violation."""

from django.db import migrations

CREATE = r"""
CREATE OR REPLACE FUNCTION ledger_redeem_walk_in(
    p_membership bigint, p_member bigint, p_practice bigint, p_service bigint, p_quantity bigint, p_key text,
    p_actor_type text, p_actor_user integer, p_actor_label text, p_reason text, p_summary text,
    p_now timestamptz)
RETURNS TABLE (r_entry bigint, r_balance bigint, r_lot bigint, r_event bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_status text; v_balance bigint; v_lot bigint; v_entry bigint; v_event bigint;
BEGIN
    -- The caller checked that member, practice and service belong together (none of them moves).
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
        idempotency_key, created_at)
    VALUES (p_membership, p_service, 'redeem', '', -p_quantity, 0, v_balance, v_lot, NULL, '', p_actor_type,
        p_actor_user, p_actor_label, p_reason, false, p_key, p_now)
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
        "text, text, text, timestamptz);")


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("memberships", "0006_time_zone_validated")]
    operations = [migrations.RunPython(create, drop)]
