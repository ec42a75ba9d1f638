"""A tier's processor name is on every card statement and receipt: saving one that names a
treatment (the practice's own, or a common one) is refused with a clear error (issue 19)."""

import pytest
from django.core.exceptions import ValidationError
from django.forms import modelform_factory

from memberships.models import Tier
from tests.factories import ServiceFactory, TierFactory, glow_tier


@pytest.fixture
def glow_practice(practice):
    glow_tier(practice)
    ServiceFactory(practice=practice, name="Lip Flip", code="lip-flip")
    return practice


@pytest.mark.parametrize("name", ["HydraFacial Club", "hydra facial monthly", "HYDRAFACIAL", "Glow + Botox",
                                  "Neurotoxin membership", "Lip Flip Plan", "lip-flip", "Filler & Facials"])
def test_a_treatment_in_the_processor_name_is_refused(glow_practice, name):
    tier = TierFactory.build(practice=glow_practice, code="new", name="New", processor_name=name)
    with pytest.raises(ValidationError) as caught:
        tier.full_clean()
    assert "processor_name" in caught.value.message_dict
    assert "card statements" in caught.value.message_dict["processor_name"][0]


@pytest.mark.parametrize("name", ["Membership — Tier B", "Glow Aesthetics membership", "Detox Lounge Plan",
                                  "Product credit club"])
def test_a_neutral_name_is_kept(glow_practice, name):
    TierFactory.build(practice=glow_practice, code="new", name="New", processor_name=name).full_clean()


def test_the_admin_form_refuses_it_and_saves_nothing(glow_practice):
    form_class = modelform_factory(Tier, fields=["practice", "code", "version", "name", "processor_name",
                                                 "price_cents", "currency", "interval", "rank", "active"])
    form = form_class(data={"practice": glow_practice.pk, "code": "luxe", "version": 1, "name": "Luxe",
                            "processor_name": "Luxe HydraFacial", "price_cents": 34900, "currency": "usd",
                            "interval": "month", "rank": 3, "active": True})
    assert not form.is_valid() and "processor_name" in form.errors
    assert not Tier.objects.filter(code="luxe").exists()


class _RecordingProcessor:
    def __init__(self):
        self.names = []

    def ensure_price(self, *, product_name, **kwargs):
        self.names.append(product_name)
        return "price_1"


def test_a_name_that_became_clinical_after_it_was_saved_is_never_sent(glow_practice):
    """Checked where it leaves for the processor too: a tier saved before a treatment of that name
    was added (or written without the form) is refused there, with the reason, and nothing is sent."""
    from integrations.processors import sync
    from integrations.processors.base import ProcessorRejected

    tier = TierFactory(practice=glow_practice, code="velvet", name="Velvet", processor_name="Velvet Club")
    ServiceFactory(practice=glow_practice, name="Velvet", code="velvet-peel")
    processor = _RecordingProcessor()
    with pytest.raises(ProcessorRejected) as caught:
        sync.ensure_price(processor, tier, idempotency_key="k")
    assert "processor name" in str(caught.value) and processor.names == []
    tier.refresh_from_db()
    assert tier.processor_price_id in ("", None)
    neutral = TierFactory(practice=glow_practice, code="calm", name="Calm", processor_name="Membership — Tier C")
    assert sync.ensure_price(processor, neutral, idempotency_key="k") == "price_1"
    assert processor.names == ["Membership — Tier C"]
