"""Authentication: the staff backend (Django's ModelBackend, reading a user's permissions — their own
and their groups' — in one query instead of two: every staff page checks one), and the API tokens
(`Authorization: Token <key>`) that expire (`API_TOKEN_DAYS`) and can be revoked in the admin."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from memberships.models import ApiToken
from memberships.services.common import Actor, write_audit

KEYWORD = "Token"
# A token's last use is written at most this often (not one write per API call).
LAST_USED_EVERY = timedelta(minutes=5)


class StaffBackend(ModelBackend):
    def get_all_permissions(self, user_obj, obj=None):
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if not hasattr(user_obj, "_perm_cache"):
            perms = Permission.objects.all()
            if not user_obj.is_superuser:
                perms = perms.filter(Q(user=user_obj) | Q(group__user=user_obj))
            user_obj._perm_cache = {
                f"{app_label}.{codename}"
                for app_label, codename in perms.values_list("content_type__app_label", "codename").order_by()
            }
        return user_obj._perm_cache


def digest_of(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def issue_api_token(*, user, name: str, actor: Actor, now: datetime, days: int | None = None) -> tuple[ApiToken, str]:
    """A new token for `user`, valid `days` (default API_TOKEN_DAYS), audited. Returns the row and
    the key, which is not stored and cannot be shown again."""
    days = settings.API_TOKEN_DAYS if days is None else days
    if days < 1:
        raise ValueError("an API token is valid for at least one day")
    key = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name.strip() or "API token", prefix=key[:8],
                                    digest=digest_of(key), created_at=now, expires_at=now + timedelta(days=days))
    write_audit(actor=actor, action="api_token_issue", obj=token, now=now,
                detail={"user_id": user.pk, "expires_at": token.expires_at.isoformat()})
    return token, key


@transaction.atomic
def revoke_api_tokens(*, tokens, actor: Actor, now: datetime) -> list[ApiToken]:
    """Revoke those of `tokens` not revoked yet, each audited; returns them. A request with a revoked
    token answers 401 from that moment."""
    revoked = list(ApiToken.objects.select_for_update().filter(pk__in=[t.pk for t in tokens], revoked_at__isnull=True))
    ApiToken.objects.filter(pk__in=[t.pk for t in revoked]).update(revoked_at=now, revoked_by=actor.user)
    for token in revoked:
        write_audit(actor=actor, action="api_token_revoke", obj=token, now=now, detail={"user_id": token.user_id})
    return revoked


class ExpiringTokenAuthentication(BaseAuthentication):
    """`Authorization: Token <key>` (the header DRF's token auth reads, so integrations need no
    change). An unknown, expired or revoked key, or one whose user is inactive, answers 401."""

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != KEYWORD.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header: Token <key>.")
        try:
            key = parts[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        return self._user_for(key, now=timezone.now())

    def _user_for(self, key: str, *, now: datetime):
        token = ApiToken.objects.select_related("user").filter(digest=digest_of(key)).first()
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This token was revoked.")
        if now >= token.expires_at:
            raise exceptions.AuthenticationFailed("This token has expired: ask a manager for a new one.")
        if token.last_used_at is None or now - token.last_used_at >= LAST_USED_EVERY:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request):
        return KEYWORD


class ExpiringTokenScheme(OpenApiAuthenticationExtension):
    """The API schema's description of the token header (drf-spectacular)."""

    target_class = "memberships.auth.ExpiringTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix=KEYWORD)
