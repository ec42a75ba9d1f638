"""A North American number at a North American practice is written without parsing it: exactly as
the phone library writes it, for every region sharing the +1 country code; any other number or
region still goes through the library."""

import random

import phonenumbers

from memberships.display import _NANP_REGIONS, format_phone


def _library(text: str, region: str) -> str:
    number = phonenumbers.parse(text, region)
    if not phonenumbers.is_possible_number(number):
        return text
    national = number.country_code == phonenumbers.country_code_for_region(region)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL if national
                                      else phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def test_a_north_american_number_reads_as_the_library_writes_it_in_every_plus_one_region():
    rng = random.Random(2026)
    regions = sorted(_NANP_REGIONS)
    assert {"US", "CA", "PR", "JM"} <= set(regions)
    numbers = ["+16265550005", "+18005550199", "+12125550123", "+19999999999", "+12002000000"]
    numbers += [f"+1{rng.randint(2, 9)}{rng.randint(0, 99):02d}{rng.randint(2, 9)}{rng.randint(0, 999999):06d}"
                for _ in range(3000)]
    for text in numbers:
        region = rng.choice(regions)
        assert format_phone(text, region=region) == _library(text, region), (text, region)


def test_other_numbers_and_regions_still_go_through_the_library():
    assert format_phone("+16265550005", region="GB") == "+1 626-555-0005"
    assert format_phone("+442079460958", region="US") == "+44 20 7946 0958"
    assert format_phone("+11115550005", region="US") == _library("+11115550005", "US")
    assert format_phone("626 555 0005", region="US") == "(626) 555-0005"
    assert format_phone("not a phone", region="US") == "not a phone"
