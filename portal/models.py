"""What the member's side keeps of its own: "send me a link" requests and the single-use links they
produced (only a hash of each link's token is stored)."""

from __future__ import annotations

from django.db import models

from memberships.fields import EncryptedTextField


class LinkRequest(models.Model):
    """One "send me a link" form, matched or not: the page does the same work either way (it stores
    this row and queues its handling). The address is kept encrypted until the task has handled it,
    then cleared; the digest (a keyed hash) counts requests per address for the rate limit."""

    address = EncryptedTextField(blank=True)
    address_digest = models.CharField(max_length=64)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField()
    handled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["address_digest", "created_at"], name="link_request_address_idx"),
                   models.Index(fields=["ip_address", "created_at"], name="link_request_ip_idx")]

    def __str__(self) -> str:
        return f"link request {self.pk}"


class MemberLink(models.Model):
    """A single-use sign-in link to one member's page, valid until `expires_at`. The token in the
    message is derived from the row (a keyed HMAC); the row holds only its SHA-256."""

    request = models.ForeignKey(LinkRequest, on_delete=models.CASCADE, related_name="links")
    member = models.ForeignKey("memberships.Member", on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=10)           # email | sms
    token_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["member", "created_at"], name="member_link_member_idx")]

    def __str__(self) -> str:
        return f"member link {self.pk}"
