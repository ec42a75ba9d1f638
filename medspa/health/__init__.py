"""`GET /healthz`: is the database reachable and is the worker taking tasks (its heartbeat)."""
