from .base import *  # noqa: F401,F403
from .base import env

DEBUG = False
DATABASES["default"] = env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/bench")  # noqa: F405
# Benchmark drivers open and drop databases, so their own connections are not kept; a web server
# started by a benchmark (gunicorn) passes CONN_MAX_AGE and keeps them, as production does.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)  # noqa: F405
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOG_LEVEL = "WARNING"
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
