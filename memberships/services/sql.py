"""The ledger's SQL, written by hand where the ORM costs more than the statement: a redemption runs
on every visit (staff pages, the API, the record's webhooks) and renewal day writes thousands of rows.

The ORM spends more time building SQL and model instances than PostgreSQL spends running the
statements of a redemption. These helpers do the same work with SQL built once per model and
database vendor, and return ordinary model instances:

- `insert(instance)` writes one row (and sends `pre_save`/`post_save`, so a receiver sees it exactly
  as after `save()`); `written(instance, pk=…)` makes an instance the row written some other way
  (the walk-in function) — the outbox hears of events from `common.announce_events`, not a signal;
- `lock_membership(...)` reads a membership with its member, practice and tier under a row lock
  (`FOR UPDATE OF` the membership only), plus whether the tier includes a service, in one query;
- `insert_many(instances)` and `update_from_values(model, values, …)` write many rows of one model in
  one statement each (PostgreSQL: `unnest` arrays, `UPDATE … FROM (VALUES …)`; `insert_many` is
  `bulk_create` elsewhere), sending no signals.

Values go through each field's own `get_db_prep_save` and database converters, as the ORM does, so
SQLite and PostgreSQL both keep working (the set-based two are PostgreSQL only)."""

from __future__ import annotations

from functools import lru_cache

from django.db import connection
from django.db.models import Model, signals

from memberships.models import Member, Membership, Practice, Tier, TierBenefit


@lru_cache(maxsize=None)
def _insert_plan(model: type[Model], vendor: str) -> tuple[str, tuple]:
    meta = model._meta
    fields = tuple(f for f in meta.concrete_fields if not f.primary_key)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({columns}) VALUES ({placeholders})"
    if connection.features.can_return_columns_from_insert:
        sql += f" RETURNING {connection.ops.quote_name(meta.pk.column)}"
    return sql, fields


def insert(instance: Model) -> Model:
    """INSERT `instance` (a new row) and return it saved, with its primary key."""
    model = type(instance)
    sql, fields = _insert_plan(model, connection.vendor)
    signals.pre_save.send(sender=model, instance=instance, raw=False, using=connection.alias, update_fields=None)
    params = [f.get_db_prep_save(f.pre_save(instance, True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        pk = cursor.fetchone()[0] if connection.features.can_return_columns_from_insert else cursor.lastrowid
    return written(instance, pk=pk)


def written(instance: Model, *, pk: int) -> Model:
    """`instance` as the row the database just wrote with primary key `pk`, announced with
    `post_save` as `save()` would."""
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = connection.alias
    signals.post_save.send(sender=type(instance), instance=instance, created=True, update_fields=None, raw=False,
                           using=connection.alias)
    return instance


def _column_plan(model: type[Model], alias: str) -> tuple[str, list]:
    fields = list(model._meta.concrete_fields)
    select = ", ".join(f"{alias}.{connection.ops.quote_name(f.column)}" for f in fields)
    plan = []
    for field in fields:
        col = field.get_col(alias)
        plan.append((field.attname, col, connection.ops.get_db_converters(col) + field.get_db_converters(connection)))
    return select, plan


def _build(model: type[Model], plan: list, values) -> Model:
    converted = []
    for (_, col, converters), value in zip(plan, values):
        for convert in converters:
            value = convert(value, col, connection)
        converted.append(value)
    return model.from_db(connection.alias, [name for name, _, _ in plan], converted)


@lru_cache(maxsize=None)
def _lock_plan(vendor: str) -> tuple[str, list]:
    q = connection.ops.quote_name
    parts = [_column_plan(model, alias) for model, alias in
             ((Membership, "ms"), (Member, "mb"), (Practice, "pr"), (Tier, "ti"))]
    lock = ""
    if connection.features.has_select_for_update:
        lock = " FOR UPDATE OF ms" if connection.features.has_select_for_update_of else " FOR UPDATE"
    sql = (
        f"SELECT {', '.join(select for select, _ in parts)}, "
        f"EXISTS (SELECT 1 FROM {q(TierBenefit._meta.db_table)} tb WHERE tb.tier_id = ms.tier_id "
        f"AND tb.service_id = %s) "
        f"FROM {q(Membership._meta.db_table)} ms "
        f"JOIN {q(Member._meta.db_table)} mb ON mb.id = ms.member_id "
        f"JOIN {q(Practice._meta.db_table)} pr ON pr.id = mb.practice_id "
        f"JOIN {q(Tier._meta.db_table)} ti ON ti.id = ms.tier_id "
        f"WHERE ms.id = %s{lock}"
    )
    return sql, [plan for _, plan in parts]


def get_locked(queryset, pk: int):
    """`queryset.get(pk=pk)` where the queryset locks (FOR UPDATE) and joins other tables. When a
    concurrent transaction changed a joined foreign key (a tier change) while we waited for the lock,
    PostgreSQL re-checks the join with the old joined row and returns nothing: then the row is locked
    alone and read again. Raises the model's DoesNotExist only when the row is really gone."""
    found = queryset.filter(pk=pk).first()
    if found is None and _lock_alone(queryset.model, pk):
        found = queryset.filter(pk=pk).first()
    if found is None:
        raise queryset.model.DoesNotExist(f"{queryset.model.__name__} {pk} does not exist")
    return found


def _lock_alone(model, pk: int) -> bool:
    return model.objects.select_for_update().filter(pk=pk).values_list("pk", flat=True).first() is not None


def lock_membership(*, membership_id: int, service_id: int | None) -> Membership:
    """The membership, locked for the rest of the transaction, with `member.practice` and `tier`
    loaded and `service_included` set (None without a service). Raises Membership.DoesNotExist."""
    sql, plans = _lock_plan(connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(sql, [service_id or 0, membership_id])
        row = cursor.fetchone()
        if row is None and _lock_alone(Membership, membership_id):  # see `get_locked`
            cursor.execute(sql, [service_id or 0, membership_id])
            row = cursor.fetchone()
    if row is None:
        raise Membership.DoesNotExist(f"membership {membership_id} does not exist")
    objects, start = [], 0
    for model, plan in zip((Membership, Member, Practice, Tier), plans):
        objects.append(_build(model, plan, row[start:start + len(plan)]))
        start += len(plan)
    membership, member, practice, tier = objects
    member.practice = practice
    membership.member = member
    membership.tier = tier
    membership.service_included = bool(row[-1]) if service_id is not None else None
    return membership


def update_from_values(model: type[Model], values: list[tuple], *, set_sql: str, columns: list[tuple[str, str]]) -> int:
    """One `UPDATE … FROM (VALUES …)` for many rows (PostgreSQL): `values` are (primary key, *columns)
    tuples, `columns` the (name, SQL type) of the rest, `set_sql` the assignments, reading the row as
    `t` and the values as `v`. Returns the number of rows updated."""
    if not values:
        return 0
    q = connection.ops.quote_name
    names = ", ".join(["id"] + [name for name, _ in columns])
    row = "(" + ", ".join(["%s::bigint"] + [f"%s::{sql_type}" for _, sql_type in columns]) + ")"
    sql = (f"UPDATE {q(model._meta.db_table)} AS t SET {set_sql} FROM (VALUES {', '.join([row] * len(values))}) "
           f"AS v({names}) WHERE t.{q(model._meta.pk.column)} = v.id")
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for values_row in values for value in values_row])
        return cursor.rowcount


_ARRAY_TYPES = {
    "BigIntegerField": "bigint", "BigAutoField": "bigint", "IntegerField": "bigint", "PositiveIntegerField": "bigint",
    "PositiveBigIntegerField": "bigint", "SmallIntegerField": "bigint", "PositiveSmallIntegerField": "bigint",
    "AutoField": "bigint", "BooleanField": "boolean", "DateTimeField": "timestamptz", "DateField": "date",
    "TimeField": "time", "JSONField": "jsonb", "DecimalField": "numeric", "FloatField": "double precision",
}


@lru_cache(maxsize=None)
def _insert_many_plan(model: type[Model]) -> tuple[str, tuple]:
    q = connection.ops.quote_name
    meta = model._meta
    fields = tuple(f for f in meta.concrete_fields if not f.primary_key)
    types = []
    for field in fields:
        target = field.target_field if field.is_relation else field
        types.append(_ARRAY_TYPES.get(target.get_internal_type(), "text"))
    columns = ", ".join(q(f.column) for f in fields)
    arrays = ", ".join(f"%s::{t}[]" for t in types)
    sql = (f"INSERT INTO {q(meta.db_table)} ({columns}) SELECT * FROM unnest({arrays}) "
           f"RETURNING {q(meta.pk.column)}")
    return sql, tuple(zip(fields, types))


def insert_many(instances: list[Model]) -> list[Model]:
    """INSERT new rows of one model in one statement (PostgreSQL: one array per column through
    `unnest`, so the statement is the same whatever the number of rows) and set their primary keys.
    Sends no signals: callers announce what they wrote themselves (`record_events`). Elsewhere
    (SQLite) `bulk_create`, which sends none either."""
    if not instances:
        return instances
    if connection.vendor != "postgresql":
        return type(instances[0]).objects.bulk_create(instances)
    import json

    sql, plan = _insert_many_plan(type(instances[0]))
    columns = []
    for field, sql_type in plan:
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            values = [field.pre_save(obj, True) for obj in instances]
        else:
            values = [getattr(obj, field.attname) for obj in instances]
        if sql_type == "jsonb":
            values = [None if v is None else json.dumps(v, cls=field.encoder) for v in values]
        columns.append(values)
    with connection.cursor() as cursor:
        cursor.execute(sql, columns)
        ids = [row[0] for row in cursor.fetchall()]
    for obj, pk in zip(instances, ids):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = connection.alias
    return instances
