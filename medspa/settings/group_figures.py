"""The group dashboard's figures (`billing.group.snapshot`), each from the environment like the rest
(listed in .env.example):

- `GROUP_FIGURES_REFRESH_SECONDS`: how often the worker recomputes every group's figures;
- `GROUP_FIGURES_MAX_AGE_SECONDS`: the oldest figures the page shows; older (the worker is not
  keeping up), the page computes them itself."""

import environ

env = environ.Env()

__all__ = ["GROUP_FIGURES_REFRESH_SECONDS", "GROUP_FIGURES_MAX_AGE_SECONDS"]

GROUP_FIGURES_REFRESH_SECONDS = max(60, env.int("GROUP_FIGURES_REFRESH_SECONDS", default=300))
GROUP_FIGURES_MAX_AGE_SECONDS = max(GROUP_FIGURES_REFRESH_SECONDS,
                                    env.int("GROUP_FIGURES_MAX_AGE_SECONDS", default=900))
