"""Set-based work on many rows, a batch of ids at a time, each batch its own transaction: what every
retention job (the inbox's payloads, member-page links, uploaded spreadsheets) runs on."""

from __future__ import annotations

from django.db import transaction


def in_batches(due, apply, *, batch_size: int, max_batches: int | None = None) -> int:
    """`apply(ids)` to the ids `due` lists (a values_list the applying takes them out of: reduced,
    deleted, emptied), `batch_size` at a time, each batch its own transaction, until none is left or
    `max_batches` ran; returns the sum of what `apply` returned."""
    total, batches = 0, 0
    while max_batches is None or batches < max_batches:
        with transaction.atomic():
            ids = list(due[:batch_size])
            if not ids:
                break
            total += apply(ids)
        batches += 1
    return total


def delete_in_batches(rows, *, batch_size: int = 1000, max_batches: int | None = None) -> int:
    """Delete `rows` (a QuerySet) a batch of ids at a time, oldest id first, each batch its own
    transaction; returns how many rows of its model went (cascades not counted)."""
    model = rows.model
    return in_batches(rows.order_by("pk").values_list("pk", flat=True),
                      lambda ids: model.objects.filter(pk__in=ids).delete()[1].get(model._meta.label, 0),
                      batch_size=batch_size, max_batches=max_batches)
