"""Reconciliation's lines read in a manager's words: a balance by its service's name, dollars as
dollars; a side that could not be read says so without an exception's class name."""

from billing.reconciliation.compare import LedgerRow, SheetSnapshot, reconcile
from billing.reconciliation.snapshots import read_side

SERVICES = {"hydrafacial": ("HydraFacial", False), "product-credit": ("Product credit", True)}


def test_balance_mismatch_names_the_service_and_shows_dollars():
    led = LedgerRow(member_id=1, member_number="GA00001", tier_code="glow", tier_name="Glow", status="active",
                    price_cents=19900, balances={"hydrafacial": 1, "product-credit": 5000})
    sheet = SheetSnapshot(member_number="GA00001", tier_code="glow", status="active",
                          balances={"hydrafacial": 2, "product-credit": 2550})
    found = reconcile([led], [sheet], None, None, services=SERVICES)
    assert [d.message for d in found] == [
        "HydraFacial balance is 2 in the spreadsheet, 1 in the ledger",
        "Product credit balance is $25.50 in the spreadsheet, $50.00 in the ledger",
    ]
    # The values kept for the CSV and the fingerprint stay the raw numbers.
    assert [d.values for d in found] == [{"service": "hydrafacial", "sheet": 2, "ledger": 1},
                                         {"service": "product-credit", "sheet": 2550, "ledger": 5000}]


def test_a_side_that_cannot_be_read_says_so_in_words(practice):
    class ProcessorUnavailable(Exception):
        pass

    def broken(**_):
        raise ProcessorUnavailable("timeout")

    rows, note = read_side("processor", practice=practice, ledger=[], sources={"processor": broken})
    assert rows is None
    assert note == "processor: could not be read this time; it is tried again at the next run"
