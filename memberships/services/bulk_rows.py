"""Many rows into one table in one statement, without a model instance per row: for the bulk paths
(an import of thousands of members) where building and preparing instances costs more than the
database's work. On PostgreSQL the ids are taken from the table's sequence in one query and the rows
sent by COPY; elsewhere (SQLite) it is `bulk_create`, so both write the same rows.

Values are given as the database keeps them: ids for foreign keys, aware datetimes, dicts or lists
for JSON fields. A field left out gets its model default (its creation time for `auto_now_add`)."""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

from django.db import connection, models
from django.db.models import F, Lookup, Q
from django.utils import timezone

_ANY_FROM = 200       # from this many values, `field = ANY(array)`: one parameter instead of one each


class _AnyOf(Lookup):
    """`field = ANY(%s)`, the values bound as one array."""

    lookup_name = "any_of"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s)", [*params, list(self.rhs)]


def among(field: str, values: Iterable[Any]) -> Q:
    """`field IN values` for a long list: on PostgreSQL `field = ANY(%s)` with the list as one array,
    which psycopg binds without splitting a query of thousands of placeholders."""
    values = list(values)
    if connection.vendor != "postgresql" or len(values) < _ANY_FROM:
        return Q(**{f"{field}__in": values})
    return Q(_AnyOf(F(field), values))


def _omitted(model: type[models.Model], fields: Sequence[str]) -> list[tuple[models.Field, Any]]:
    given = {model._meta.get_field(name).attname for name in fields}
    now = timezone.now()
    out = []
    for field in model._meta.concrete_fields:
        if field.primary_key or field.attname in given:
            continue
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            out.append((field, now))
        else:
            out.append((field, field.get_default()))
    return out


def insert_rows(model: type[models.Model], fields: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[int]:
    """Insert `rows` (tuples of values for `fields`, in that order) and return their ids, in order."""
    rows = list(rows)
    if not rows:
        return []
    omitted = _omitted(model, fields)
    if connection.vendor != "postgresql":
        names = [model._meta.get_field(name).attname for name in fields]
        created = model.objects.bulk_create([
            model(**dict(zip(names, row)), **{f.attname: value for f, value in omitted}) for row in rows])
        return [obj.pk for obj in created]
    meta = model._meta
    given = [meta.get_field(name) for name in fields]
    json_at = [i for i, field in enumerate(given) if isinstance(field, models.JSONField)]
    tail = tuple(json.dumps(value) if isinstance(field, models.JSONField) else value for field, value in omitted)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in [meta.pk, *given, *(f for f, _ in omitted)])
    table = connection.ops.quote_name(meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                       [meta.db_table, meta.pk.column, len(rows)])
        ids = [pk for (pk,) in cursor.fetchall()]
        with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for pk, row in zip(ids, rows):
                if json_at:
                    row = list(row)
                    for i in json_at:
                        row[i] = json.dumps(row[i])
                copy.write_row((pk, *row, *tail))
    return ids
