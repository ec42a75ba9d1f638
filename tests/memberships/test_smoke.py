from django.utils import timezone

from memberships import services
from memberships.models import EntitlementBalance
from tests.factories import active_membership


def test_enroll_refill_redeem(glow):
    tier, facial, credit = glow
    m = active_membership(tier=tier)
    now = timezone.now()
    e = services.redeem_entitlement(membership=m, service=facial, actor=services.Actor.system(),
                                    idempotency_key="k1", now=now)
    assert e.balance_after == 0
    assert services.redeem_entitlement(membership=m, service=facial, actor=services.Actor.system(),
                                       idempotency_key="k1", now=now).pk == e.pk
    assert EntitlementBalance.objects.get(membership=m, service=credit).balance == 5000
