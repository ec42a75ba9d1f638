"""django-q2 tasks: thin, take ids, read the clock once."""

from __future__ import annotations

from django.utils import timezone


def run_import(batch_id: int) -> str:
    from billing.mirror import run_import_batch

    return run_import_batch(batch_id=batch_id, now=timezone.now()).status
