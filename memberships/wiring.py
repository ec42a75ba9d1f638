"""What the ledger connects when the app is ready (called from `MembershipsConfig.ready`): the staff
roles, brought up to date after every migrate. Its periodic job is listed with every other in
`medspa.schedules`."""

from __future__ import annotations

from django.db.models.signals import post_migrate

from .roles import ensure_roles


def connect(app_config) -> None:
    # After every app's migrate, not only ours: billing's and integrations' permissions are
    # created by their own post_migrate, later than ours, and the manager role views them too.
    post_migrate.connect(ensure_roles, dispatch_uid="memberships.ensure_roles")
