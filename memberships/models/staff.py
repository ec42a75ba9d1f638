"""Staff: which practice a user works for, the audit log of every chart read and change, and the
API tokens staff integrations use."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from .append_only import AppendOnlyModel
from .members import Member
from .practice import Practice


class AuditLog(AppendOnlyModel):
    """Every staff read of a chart and every change: who, what, when."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True)
    action = models.CharField(max_length=60)
    object_type = models.CharField(max_length=60, blank=True)
    object_id = models.CharField(max_length=60, blank=True)
    member = models.ForeignKey(Member, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    detail = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    location = models.ForeignKey("memberships.Location", on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="+", db_index=False)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["member", "-created_at"], name="audit_member_idx"),
            # the dashboard's staff hours saved counts the member page's views by month
            models.Index(fields=["created_at"], name="audit_member_page_view_idx",
                         condition=models.Q(action="member_page_view")),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.user} {self.action} {self.object_type}:{self.object_id}"


class StaffProfile(models.Model):
    """Which practice a staff user works for (roles are Django groups), and at which of its locations
    (chosen at login, remembered for the next). A group manager (`organization` set) may work at any
    location of the group; `practice` is then the practice of the location they chose."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_profile")
    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="staff")
    location = models.ForeignKey("memberships.Location", on_delete=models.SET_NULL, null=True, blank=True,
                                 related_name="+")
    organization = models.ForeignKey("memberships.Organization", on_delete=models.PROTECT, null=True, blank=True,
                                     related_name="group_managers",
                                     help_text="Set for a group manager: the group they manage.")

    def __str__(self) -> str:
        return f"{self.user} @ {self.practice}"


class ApiToken(models.Model):
    """A staff user's credential for the REST API (`Authorization: Token <key>`). Only the key's
    SHA-256 digest is stored (the key is shown once, when issued); `prefix` (its first characters)
    tells tokens apart in the admin. It stops working at `expires_at`, or at once when revoked."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What uses it, e.g. “EHR integration”.")
    prefix = models.CharField(max_length=8)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API token"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(expires_at__gt=models.F("created_at")),
                                   name="api_token_expires_after_created"),
        ]

    def __str__(self) -> str:
        return f"{self.prefix}… {self.name} ({self.user})"

    def usable_at(self, now) -> bool:
        return self.revoked_at is None and now < self.expires_at
