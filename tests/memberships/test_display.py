"""How phones and money read wherever a person sees them: the `phone` and `money` template filters
(memberships.display), the admin's plural names, and the redeem form's help under Quantity."""

import pytest
from django.apps import apps
from django.template import Context, Template

from memberships.display import format_money, format_phone


def render(source: str, **context) -> str:
    return Template("{% load staff %}" + source).render(Context(context))


@pytest.mark.parametrize("stored, shown", [
    ("+16265550005", "(626) 555-0005"),          # a US number, as a US front desk writes it
    ("+14155550123", "(415) 555-0123"),
    ("+14165550123", "(416) 555-0123"),          # Canada shares +1: dialled the same way from the US
    ("+442079460958", "+44 20 7946 0958"),       # abroad: international format
    ("+33142685300", "+33 1 42 68 53 00"),
    ("6265550005", "(626) 555-0005"),            # a number stored without its +1 (an old import)
])
def test_phone_filter_shows_a_number_as_people_write_it(stored, shown):
    assert render("{{ p|phone }}", p=stored) == shown


@pytest.mark.parametrize("stored", ["", None, "ask at the desk", "+1234"])
def test_phone_filter_leaves_what_is_not_a_phone_number_as_it_was(stored):
    assert render("{{ p|phone }}", p=stored) == ("" if stored is None else stored)


def test_phone_of_another_country_at_a_practice_abroad(settings):
    settings.IMPORT_PHONE_REGION = "GB"
    assert format_phone("+442079460958") == "020 7946 0958"
    assert format_phone("+16265550005") == "+1 626-555-0005"


@pytest.mark.parametrize("cents, currency, shown", [
    (19900, "usd", "$199.00"),
    (0, "usd", "$0.00"),
    (-500, "usd", "-$5.00"),
    (123456789, "usd", "$1,234,567.89"),
    (1250, "eur", "€12.50"),
    (1250, "CAD", "CA$12.50"),
    (1250, "chf", "CHF 12.50"),
    (500, "jpy", "¥500"),                         # no minor unit
    (9_007_199_254_740_993, "usd", "$90,071,992,547,409.93"),  # beyond a float's exact integers
])
def test_money_formats_cents(cents, currency, shown):
    assert format_money(cents, currency) == shown
    assert render("{{ c|money:cur }}", c=cents, cur=currency) == shown


def test_money_filter_defaults_to_dollars_and_is_the_one_cents_filter():
    assert render("{{ c|money }}", c=19900) == "$199.00"
    assert render("{{ c|cents }}", c=19900) == "$199.00"   # the older name: the same function
    assert render("{{ c|money }}", c=None) == ""
    assert "USD" not in render("{{ c|money:'usd' }}", c=19900)


def test_the_admin_spells_every_plural():
    """Django adds an "s": "ledger entrys", "import batchs". Every model of the project says its own."""
    wrong = []
    for model in apps.get_models():
        if model._meta.app_label not in ("memberships", "billing", "integrations", "health"):
            continue
        plural = str(model._meta.verbose_name_plural)
        last = plural.split()[-1]
        if (last.endswith("ys") and last[-3] not in "aeiou") or last.endswith(("chs", "shs", "xs", "sss", "ss")):
            wrong.append(f"{model.__name__}: {plural}")
    assert wrong == []
    assert str(apps.get_model("memberships", "LedgerEntry")._meta.verbose_name_plural) == "ledger entries"
    assert str(apps.get_model("billing", "ImportBatch")._meta.verbose_name_plural) == "import batches"


def test_redeem_help_follows_the_benefit_chosen():
    from memberships.forms import RedeemForm
    from memberships.selectors import BalanceLine

    facial = BalanceLine(service_id=1, service_name="HydraFacial", service_kind="treatment", balance=1, reserved=0,
                         available=1, per_cycle=1, rollover_in_words="", frozen=False, balance_display="1",
                         available_display="1")
    credit = BalanceLine(service_id=2, service_name="Product credit", service_kind="credit", balance=5000,
                         reserved=0, available=5000, per_cycle=5000, rollover_in_words="", frozen=False,
                         balance_display="$50.00", available_display="$50.00")
    on_facial = RedeemForm(balances=[facial, credit], initial={"service": 1})
    assert on_facial.fields["quantity"].help_text == "Number of treatments (a whole number)."
    on_credit = RedeemForm(balances=[facial, credit], initial={"service": 2})
    assert on_credit.fields["quantity"].help_text == "Dollar amount, e.g. 25.00."
    posted = RedeemForm({"service": "2", "quantity": "1.5"}, balances=[facial, credit])
    assert posted.fields["quantity"].help_text == "Dollar amount, e.g. 25.00."
    # Each option carries its own help, for the page's script to follow a change of benefit.
    html = str(on_facial["service"])
    assert 'data-help="Number of treatments (a whole number)."' in html
    assert 'data-help="Dollar amount, e.g. 25.00."' in html and 'data-help-target="id_quantity_help"' in html
    assert "Dollars for a credit" not in str(on_facial.as_div())
