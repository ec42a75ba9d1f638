"""Joining online: the practice's membership agreement (versioned text a manager edits), a join
under way (the minimum kept between the join page and the processor's confirmation), and the
member's acceptance of the agreement (an e-signature: which version, when, from which address)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from .catalogue import Tier
from .members import Member
from .membership import Membership
from .practice import Practice


class MembershipAgreement(models.Model):
    """One version of a practice's membership agreement. The join page shows the newest published
    version; a version once accepted is never edited (a change is a new version)."""

    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="agreements")
    version = models.PositiveIntegerField()
    text = models.TextField()
    published_at = models.DateTimeField(null=True, blank=True,
                                        help_text="Empty: a draft the join page does not show yet.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["practice", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["practice", "version"], name="agreement_version_unique"),
            models.CheckConstraint(condition=Q(version__gte=1), name="agreement_version_gte_1"),
        ]

    def __str__(self) -> str:
        return f"{self.practice} agreement v{self.version}"


class JoinAttempt(models.Model):
    """A join between the form and the processor's confirmation: what enrolling needs and nothing
    more. Deleted when the join completes (the acceptance row keeps the signature); an abandoned one
    is purged by a scheduled job (`purge_abandoned_joins`)."""

    ref = models.CharField(max_length=40, unique=True, help_text="Opaque; the processor's metadata carries it.")
    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="+")
    tier = models.ForeignKey(Tier, on_delete=models.CASCADE, related_name="+")
    agreement = models.ForeignKey(MembershipAgreement, on_delete=models.PROTECT, related_name="+")
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    email = models.EmailField()
    phone = models.CharField(max_length=20)
    sms_consent_text = models.TextField(blank=True, help_text="The consent text shown, when the box was ticked.")
    accepted_at = models.DateTimeField()
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    checkout_ref = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["ip_address", "created_at"], name="join_attempt_ip_idx"),
                   models.Index(fields=["created_at"], name="join_attempt_created_idx")]

    def __str__(self) -> str:
        return f"join {self.ref}"


class AgreementAcceptance(models.Model):
    """A member's acceptance of one version of the agreement when joining online, with the SMS
    consent text they ticked (empty: none given). Never changed."""

    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="agreement_acceptances")
    membership = models.ForeignKey(Membership, on_delete=models.PROTECT, related_name="+")
    agreement = models.ForeignKey(MembershipAgreement, on_delete=models.PROTECT, related_name="acceptances")
    accepted_at = models.DateTimeField()
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    sms_consent_text = models.TextField(blank=True)
    join_ref = models.CharField(max_length=40, unique=True)
    checkout_ref = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.member_id} accepted v{self.agreement_id} at {self.accepted_at:%Y-%m-%d %H:%M}"
