"""Putting the mirror's long jobs on the queue (after the transaction that created their rows)."""

from __future__ import annotations

import logging

from django.db import transaction

logger = logging.getLogger(__name__)


def enqueue_import(batch_id: int) -> None:
    def send() -> None:
        from django_q.tasks import async_task

        async_task("billing.tasks.run_import", batch_id, group="import")

    transaction.on_commit(send)
