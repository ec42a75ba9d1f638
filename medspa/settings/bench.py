from .base import *  # noqa: F401,F403
from .base import env

DEBUG = False
DATABASES["default"] = env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/bench")  # noqa: F405
# Benchmark drivers open and drop databases, so their own connections are not kept; a web server
# started by a benchmark (gunicorn) passes CONN_MAX_AGE and keeps them, as production does.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)  # noqa: F405
# As the base settings default it; CONN_HEALTH_CHECKS=1 in the environment compares with them on.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=False)  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOG_LEVEL = "WARNING"
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
# The project's URLs plus the webhook ceiling that benchmarks/webhooks.py compares ours with.
ROOT_URLCONF = "benchmarks._ceiling_urls"
