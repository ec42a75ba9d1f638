"""API tokens in the admin: issue one (a superuser: the key is shown once, on the page that follows),
see which exist and whether each is active, expired or revoked, and revoke them — a manager sees
and can revoke their own practice's tokens (e.g. one that leaked), no other's. Nothing is deleted: a revoked token stays
listed with who revoked it and when."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.shortcuts import render
from django.utils import timezone

from .admin import PracticeScopedAdmin
from .auth import issue_api_token, revoke_api_tokens
from .client_ip import client_ip
from .models import ApiToken
from .services.common import Actor


class IssueTokenForm(forms.ModelForm):
    days = forms.IntegerField(label="Valid for (days)", min_value=1, max_value=3650,
                              initial=lambda: settings.API_TOKEN_DAYS)

    class Meta:
        model = ApiToken
        fields = ["user", "name"]


def _actor(request) -> Actor:
    return Actor.staff(request.user, ip_address=client_ip(request))


@admin.register(ApiToken)
class ApiTokenAdmin(PracticeScopedAdmin):
    practice_path = "user__staff_profile__practice"
    list_display = ["prefix", "name", "user", "status", "created_at", "expires_at", "last_used_at", "revoked_by"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "user__username"]
    readonly_fields = ["user", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at", "revoked_by"]
    actions = ["revoke"]

    @admin.display(description="status")
    def status(self, token: ApiToken) -> str:
        if token.revoked_at is not None:
            return "revoked"
        return "active" if token.usable_at(timezone.now()) else "expired"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user", "revoked_by")

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = IssueTokenForm
        return super().get_form(request, obj, change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request, obj=None):
        return ["user", "name", "days"] if obj is None else self.readonly_fields

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user":
            kwargs["queryset"] = get_user_model().objects.filter(is_active=True, staff_profile__isnull=False)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        token, key = issue_api_token(user=form.cleaned_data["user"], name=form.cleaned_data["name"],
                                     days=form.cleaned_data["days"], actor=_actor(request), now=timezone.now())
        for field in ApiToken._meta.concrete_fields:
            setattr(obj, field.attname, getattr(token, field.attname))
        obj._state.adding = False
        request._issued_api_key = key

    def response_add(self, request, obj, post_url_continue=None):
        """The key, once: it is not stored (only its digest) and never shown again."""
        return render(request, "admin/memberships/apitoken/issued.html", {
            **self.admin_site.each_context(request), "token": obj, "key": request._issued_api_key,
            "opts": self.opts, "title": "API token issued"})

    @admin.action(description="Revoke the selected tokens (they answer 401 at once)")
    def revoke(self, request, queryset):
        revoked = revoke_api_tokens(tokens=list(queryset), actor=_actor(request), now=timezone.now())
        messages.success(request, f"{len(revoked)} token{'s' if len(revoked) != 1 else ''} revoked.")
