"""Joining online (`portal.join`, README "Join online"), each from the environment like the rest
(listed in .env.example):

- `JOIN_RATE_LIMIT` joins started from one client address per `JOIN_RATE_WINDOW_MINUTES`;
- `JOIN_CHECKOUT_MINUTES`: how long the processor's hosted payment page stays open (30–1440);
- `JOIN_ATTEMPT_RETENTION_HOURS`: after how long an abandoned join's details are deleted."""

import environ

env = environ.Env()

__all__ = ["JOIN_RATE_LIMIT", "JOIN_RATE_WINDOW_MINUTES", "JOIN_CHECKOUT_MINUTES", "JOIN_ATTEMPT_RETENTION_HOURS"]

JOIN_RATE_LIMIT = env.int("JOIN_RATE_LIMIT", default=5)
JOIN_RATE_WINDOW_MINUTES = env.int("JOIN_RATE_WINDOW_MINUTES", default=60)
JOIN_CHECKOUT_MINUTES = env.int("JOIN_CHECKOUT_MINUTES", default=60)
JOIN_ATTEMPT_RETENTION_HOURS = env.int("JOIN_ATTEMPT_RETENTION_HOURS", default=24)
