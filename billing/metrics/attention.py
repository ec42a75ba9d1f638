"""What at the edges needs a person, for the dashboard's "Needs attention" box. The edges fill it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

# What at the edges needs a person (updates that could not be delivered, webhooks waiting or failed,
# the record's exceptions): `integrations` registers its reader when its app is ready; billing never
# imports the edges. reader(practice_id=, now=) -> an object the dashboard template reads.
_attention_reader: Callable[..., Any] | None = None


def register_attention_reader(reader: Callable[..., Any]) -> None:
    global _attention_reader
    _attention_reader = reader


def needs_attention(*, practice_id: int | None, now: datetime) -> Any:
    """The edges' counts for the dashboard's "Needs attention" box; None without a reader."""
    return _attention_reader(practice_id=practice_id, now=now) if _attention_reader is not None else None
