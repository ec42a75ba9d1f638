"""Connections made when the app is ready. None at present: the dunning schedule is listed with every
periodic job in `medspa.schedules`."""

from __future__ import annotations


def connect(app_config) -> None:
    """Nothing to connect (the dunning run's schedule is created by `medspa.schedules`)."""
