"""A practice's members."""

from __future__ import annotations

from django.db import models

from .practice import Location, Practice


class Member(models.Model):
    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="members")
    home_location = models.ForeignKey(
        Location, on_delete=models.SET_NULL, null=True, blank=True, related_name="members"
    )
    member_number = models.CharField(max_length=20)
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=20, blank=True, help_text="E.164, e.g. +14155550123")
    date_of_birth = models.DateField(null=True, blank=True,
                                     help_text="From the practice's spreadsheet: tells apart two members of one name.")
    sms_consent = models.BooleanField(default=False)
    sms_consent_at = models.DateTimeField(null=True, blank=True)
    sms_opted_out_at = models.DateTimeField(null=True, blank=True)
    record_patient_id = models.CharField(max_length=100, blank=True)
    processor_customer_id = models.CharField(max_length=100, blank=True)
    # Lower-cased "first last" for fast prefix search.
    search_name = models.CharField(max_length=201, editable=False, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["practice", "member_number"], name="member_number_unique"),
        ]
        indexes = [
            models.Index(fields=["practice", "last_name", "first_name"], name="member_name_idx"),
            models.Index(fields=["phone"], name="member_phone_idx"),
            models.Index(fields=["email"], name="member_email_idx"),
            models.Index(fields=["record_patient_id"], name="member_patient_idx"),
            models.Index(fields=["processor_customer_id"], name="member_customer_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.member_number} {self.first_name} {self.last_name}"

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def can_receive_sms(self) -> bool:
        return bool(self.phone) and self.sms_consent and self.sms_opted_out_at is None

    def save(self, *args, **kwargs):
        self.search_name = f"{self.first_name} {self.last_name}".lower().strip()
        if kwargs.get("update_fields") is not None and (
            {"first_name", "last_name"} & set(kwargs["update_fields"])
        ):
            kwargs["update_fields"] = list(set(kwargs["update_fields"]) | {"search_name"})
        super().save(*args, **kwargs)
