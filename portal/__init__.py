"""The member's side: joining online (`/join/<practice>/`), the member's own page (`/me/`) and the
notices a member receives. It translates the member's requests into the ledger's doors
(memberships.services) and the processor's hosted pages (integrations.processors); nothing imports it
but the wiring (medspa)."""
