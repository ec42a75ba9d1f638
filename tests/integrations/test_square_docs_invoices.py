"""Square's invoice statuses, as Square's `InvoiceStatus` reference words them (connect-api-specification
api.json, developer.squareup.com/reference/square/enums/InvoiceStatus):

- FAILED: "Square canceled the invoice due to suspicious activity" — not a declined card (a failed
  scheduled charge leaves the invoice UNPAID and sends `invoice.scheduled_charge_failed`);
- PAYMENT_PENDING: "A payment on the invoice was initiated but has not yet been processed. When in this
  state, invoices cannot be updated and other payments cannot be initiated."

A member chased for a failed charge whose invoice is in either state is not sent to pay it at Square's
page (which takes no payment then): the card page alone, as for an invoice the seller cancelled."""

from urllib.parse import urlparse

import pytest

from billing.dunning.links import card_update_link
from integrations.processors.base import ProcessorRejected
from integrations.processors.square_read import _invoice_status

from .test_square_dunning import failed_charge, square_member, way_on  # noqa: F401  (fixtures)
from tests.support.square_fixtures import square, square_env, square_fake  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("status", ["PAYMENT_PENDING", "FAILED"])
def test_a_member_is_not_sent_to_pay_an_invoice_square_takes_no_payment_on(status, square_member, square_fake,
                                                                           square, client):
    member, membership, sub_id = square_member
    case = failed_charge(square_fake, client, sub_id)
    path = urlparse(card_update_link(case.pk)).path
    assert way_on(client.get(path)) == square_fake.invoices[case.invoice_ref]["public_url"]   # UNPAID: pay there

    square_fake.invoices[case.invoice_ref]["status"] = status
    opened = client.get(path)
    assert opened.status_code == 302 and way_on(opened) == ""          # our card page, no way on to pay
    with pytest.raises(ProcessorRejected, match=status):
        square.invoice_payment_url(invoice_ref=case.invoice_ref)


def test_an_invoice_square_cancelled_for_suspicious_activity_still_reads_unpaid_to_reconciliation():
    """Nothing was paid for that cycle and Square will not collect it: an entitled member on it is
    reported (open), for a person to look at, rather than read as written off."""
    assert _invoice_status({"status": "FAILED"}) == "open"
    assert _invoice_status({"status": "CANCELED"}) == "void"
