"""django-q2 task of the notices: reads the clock once; safe to run twice and in several workers
(the memberships are locked per batch and each notice is unique per membership, kind and boundary)."""

from __future__ import annotations

from django.utils import timezone


def plan_notices_task() -> dict[str, int]:
    from .planning import plan_notices

    return plan_notices(now=timezone.now())
