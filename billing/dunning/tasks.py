"""django-q2 task of dunning: reads the clock once; safe to run twice and in several workers."""

from __future__ import annotations

from django.utils import timezone


def run_dunning_task() -> dict[str, int]:
    from .schedule import run_dunning

    return run_dunning(now=timezone.now())
