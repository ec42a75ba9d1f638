"""Member messages (Twilio SMS, email) go out for dunning, their main sender: the dunning fixtures of
tests/billing (a practice at the dunning stage, its members, the processor played by a fake), and
Twilio played by a local server."""

from tests.billing.conftest import (  # noqa: F401  (fixtures)
    dunning_practice,
    fake_processor,
    member_factory,
    membership,
)
from tests.support.twilio import twilio  # noqa: F401  (fixture)
