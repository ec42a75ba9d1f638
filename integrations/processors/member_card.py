"""The member page's "update my card": the same hosted, card-update-only page as the dunning link
(`card_update_url`: Stripe's Billing Portal limited to replacing the card), opened for a member who
is signed in on their own page — no dunning case needed, and the dunning link's rules untouched."""

from __future__ import annotations

from .dunning import ProcessorRejected, ProcessorUnavailable, get_dunning_processor

__all__ = ["NoProcessorCustomer", "ProcessorRejected", "ProcessorUnavailable", "member_card_update_url"]


class NoProcessorCustomer(Exception):
    """The member has no customer at the processor yet (nothing to put a card on)."""


def member_card_update_url(*, member, return_url: str) -> str:
    """A fresh hosted page (it lives for minutes) for the member's own customer at the processor."""
    if not member.processor_customer_id:
        raise NoProcessorCustomer(member.pk)
    if member.practice.processor == "square":         # our page with Square's card fields
        from memberships.selectors import current_membership

        from .square_cards import card_page_url, open_membership

        membership = current_membership(member=member)
        if membership is None or open_membership(membership.pk) is None:
            raise NoProcessorCustomer(member.pk)
        return card_page_url(membership=membership, back_url=return_url)
    return get_dunning_processor().card_update_url(customer_id=member.processor_customer_id, return_url=return_url)
