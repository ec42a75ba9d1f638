"""What the API tests share: clients with a staff member's API token, and the calls they repeat."""

from __future__ import annotations

from django.utils import timezone
from rest_framework.test import APIClient

from memberships.auth import issue_api_token
from memberships.services import Actor


def api_token(user) -> str:
    """A fresh API token key for `user`, as a manager would issue it."""
    _, key = issue_api_token(user=user, name="tests", actor=Actor.system(), now=timezone.now())
    return key


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token(user)}")
    return client


def redeem(client, membership, body, key="k-1"):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(f"/api/v1/memberships/{membership.pk}/redemptions/", body, format="json", **headers)


def hold(client, membership, body, key="h-1"):
    return client.post(f"/api/v1/memberships/{membership.pk}/holds/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
