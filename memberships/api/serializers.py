"""What the API reads (the `…In` serializers, query filters included) and answers (`…Out`)."""

from __future__ import annotations

from rest_framework import serializers

from memberships import selectors
from memberships.models import (
    BillingInterval,
    EntryKind,
    EventKind,
    LedgerEntry,
    Member,
    Membership,
    MembershipStatus,
    RedeemableAt,
    Reservation,
    ReservationStatus,
    RolloverRule,
    Service,
    ServiceKind,
    Tier,
    TierBenefit,
)
from memberships.errors import NotRedeemableHere
from memberships.services.common import MAX_QUANTITY
from memberships.services.redemption import check_location

from .base import MAX_ID


def _id(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


# --- query filters ----------------------------------------------------------------------------

class MemberFilterIn(serializers.Serializer):
    q = serializers.CharField(required=False, max_length=100, allow_blank=True, trim_whitespace=True,
                              help_text="Name (prefix of first, last or \"first last\"), phone, email or "
                                        "member number.")
    status = serializers.ChoiceField(MembershipStatus.choices, required=False,
                                     help_text="Only members whose current membership has this status.")
    tier_id = _id(required=False, help_text="Only members whose current membership is on this tier.")


class TimelineFilterIn(serializers.Serializer):
    kind = serializers.ChoiceField(EventKind.choices, required=False, help_text="Only events of this kind.")


class HoldFilterIn(serializers.Serializer):
    status = serializers.ChoiceField(ReservationStatus.choices, required=False)


class CatalogueFilterIn(serializers.Serializer):
    active = serializers.BooleanField(required=False, allow_null=True, default=None,
                                      help_text="true: only what is offered now; false: only what was retired.")


class ServiceFilterIn(CatalogueFilterIn):
    kind = serializers.ChoiceField(ServiceKind.choices, required=False)


# --- members and memberships ------------------------------------------------------------------

class MemberBriefOut(serializers.ModelSerializer):
    practice_id = serializers.IntegerField(help_text="Whose member: the user's practice, or another of its group.")
    home_location_id = serializers.IntegerField(allow_null=True, help_text="The member's home location, if set.")

    class Meta:
        model = Member
        fields = ["id", "member_number", "first_name", "last_name", "email", "phone", "practice_id",
                  "home_location_id"]


class MemberOut(MemberBriefOut):
    """A member in a list, with the current membership (the open one, else the latest cancelled)."""

    membership_id = serializers.IntegerField(allow_null=True, read_only=True)
    membership_status = serializers.ChoiceField(MembershipStatus.choices, allow_null=True, read_only=True)

    class Meta(MemberBriefOut.Meta):
        fields = MemberBriefOut.Meta.fields + ["membership_id", "membership_status"]


class BalanceOut(serializers.Serializer):
    service_id = serializers.IntegerField()
    service_name = serializers.CharField()
    service_kind = serializers.ChoiceField(ServiceKind.choices)
    balance = serializers.IntegerField(help_text="Units, or cents for a dollar credit.")
    reserved = serializers.IntegerField(help_text="On hold for booked appointments.")
    available = serializers.IntegerField(help_text="balance - reserved: what may be redeemed now.")
    per_cycle = serializers.IntegerField(allow_null=True)
    rollover_in_words = serializers.CharField()
    frozen = serializers.BooleanField()


class MembershipCoreOut(serializers.ModelSerializer):
    status = serializers.ChoiceField(MembershipStatus.choices)
    tier = serializers.CharField(source="tier.name")
    tier_id = serializers.IntegerField()
    price_cents = serializers.IntegerField(source="tier.price_cents")
    currency = serializers.CharField(source="tier.currency")
    version = serializers.SerializerMethodField(
        help_text="The newest ledger entry's id: send it as `chart_version` when redeeming to be told "
                  "(409 `stale_chart`) if the balance changed since.")
    balances = serializers.SerializerMethodField()
    redeemable_at = serializers.ChoiceField(
        RedeemableAt.choices, source="tier.redeemable_at",
        help_text="Where the tier's benefits may be redeemed: `group` (any location of the group) or `home` "
                  "(only at the member's home location).")
    redeemable_here = serializers.SerializerMethodField(
        help_text="Whether the tier's location rule lets the user's desk redeem (else a redemption answers "
                  "409 `not_redeemable_here`); the status and balances decide the rest.")

    class Meta:
        model = Membership
        fields = ["id", "status", "tier", "tier_id", "price_cents", "currency", "started_at",
                  "current_period_start", "current_period_end", "last_refill_at", "paused_until",
                  "cancelled_at", "version", "balances", "redeemable_at", "redeemable_here"]

    def get_redeemable_here(self, obj) -> bool:
        actor = self.context.get("actor")
        if actor is None:
            return True
        try:
            check_location(membership=obj, actor=actor)
        except NotRedeemableHere:
            return False
        return True

    def get_version(self, obj) -> int:
        newest = LedgerEntry.objects.filter(membership_id=obj.pk).order_by("-id").values_list("id", flat=True)
        return newest.first() or 0

    def get_balances(self, obj) -> BalanceOut(many=True):
        return BalanceOut([line.__dict__ for line in selectors.balance_lines(membership=obj)], many=True).data


class MembershipOut(MembershipCoreOut):
    member = MemberBriefOut()

    class Meta(MembershipCoreOut.Meta):
        fields = MembershipCoreOut.Meta.fields + ["member"]


class MemberDetailOut(MemberBriefOut):
    membership = serializers.SerializerMethodField(help_text="The current membership with its balances, or null.")

    class Meta(MemberBriefOut.Meta):
        fields = MemberBriefOut.Meta.fields + ["membership"]

    def get_membership(self, obj) -> MembershipCoreOut(allow_null=True):
        membership = selectors.current_membership(member=obj)
        if membership is None:
            return None
        membership.member = obj
        return MembershipCoreOut(membership, context=self.context).data


class EventOut(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(EventKind.choices)
    summary = serializers.CharField()
    payload = serializers.DictField(child=serializers.JSONField(),
                                    help_text="Ids and amounts (e.g. entry_id, service_id, quantity).")
    actor_type = serializers.CharField()
    created_at = serializers.DateTimeField()


# --- spending ---------------------------------------------------------------------------------

class RedemptionIn(serializers.Serializer):
    service_id = _id()
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY, default=1,
                                        help_text="Units, or cents for a dollar credit.")
    chart_version = serializers.IntegerField(
        min_value=0, max_value=MAX_ID, required=False,
        help_text="The membership's `version` the decision was made on; a redemption of this service "
                  "written since answers 409 `stale_chart`.")


class EntryOut(serializers.ModelSerializer):
    kind = serializers.ChoiceField(EntryKind.choices)
    service_id = serializers.IntegerField()
    membership_id = serializers.IntegerField()
    reverses_id = serializers.IntegerField(allow_null=True)

    class Meta:
        model = LedgerEntry
        fields = ["id", "membership_id", "service_id", "kind", "quantity", "balance_after", "reverses_id",
                  "dispute", "created_at"]


class RedemptionOut(serializers.ModelSerializer):
    service_id = serializers.IntegerField()
    membership_id = serializers.IntegerField()
    quantity = serializers.SerializerMethodField(help_text="What was spent (positive).")

    class Meta:
        model = LedgerEntry
        fields = ["id", "membership_id", "service_id", "quantity", "balance_after", "created_at"]

    def get_quantity(self, obj) -> int:
        return -obj.quantity


class ReversalIn(serializers.Serializer):
    reason = serializers.CharField(max_length=300, help_text="Why (kept on the entry and the timeline).")
    dispute = serializers.BooleanField(default=False, help_text="The member disputed the treatment.")


class HoldIn(serializers.Serializer):
    service_id = _id()
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY, default=1)
    external_ref = serializers.CharField(max_length=200, required=False, allow_blank=True, default="",
                                         help_text="The appointment's id in the record.")


class HoldOut(serializers.ModelSerializer):
    membership_id = serializers.IntegerField()
    service_id = serializers.IntegerField()
    status = serializers.ChoiceField(ReservationStatus.choices)
    entry_id = serializers.IntegerField(allow_null=True, help_text="The redemption, once committed.")

    class Meta:
        model = Reservation
        fields = ["id", "membership_id", "service_id", "quantity", "status", "external_ref", "entry_id",
                  "created_at", "resolved_at"]


# --- the catalogue ----------------------------------------------------------------------------

class ServiceOut(serializers.ModelSerializer):
    kind = serializers.ChoiceField(ServiceKind.choices)

    class Meta:
        model = Service
        fields = ["id", "name", "code", "kind", "unit_value_cents", "active"]


class BenefitOut(serializers.ModelSerializer):
    service_id = serializers.IntegerField()
    service_name = serializers.CharField(source="service.name")
    rollover = serializers.ChoiceField(RolloverRule.choices)
    rollover_in_words = serializers.CharField()

    class Meta:
        model = TierBenefit
        fields = ["service_id", "service_name", "quantity_per_cycle", "rollover", "rollover_cap",
                  "expire_after_cycles", "rollover_in_words"]


class TierOut(serializers.ModelSerializer):
    interval = serializers.ChoiceField(BillingInterval.choices)
    benefits = BenefitOut(many=True)

    class Meta:
        model = Tier
        fields = ["id", "code", "version", "name", "price_cents", "currency", "interval", "active", "benefits"]
