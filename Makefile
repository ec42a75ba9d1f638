# Two commands set up and run everything: `make run` (the app with a demo practice) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-postgres test-clock browsers bench install migrate seed worker web clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_demo

# Web server on 127.0.0.1:8000 (RUN_ADDR) and a django-q2 worker together; Ctrl-C stops both. The
# worker runs in a process group of its own, so the terminal's Ctrl-C reaches only the web server; then
# the worker is sent one SIGTERM and waited for (it finishes the task in hand, nothing is cut half-way).
RUN_ADDR ?= 127.0.0.1:8000
run: seed
	$(PY) manage.py collectstatic --noinput --verbosity 0
	@echo "Open http://$(RUN_ADDR)/ (logins printed above). Ctrl-C stops the web server and the worker."
	@$(PY) -c 'import os, sys; os.setpgid(0, 0); os.execv(sys.executable, [sys.executable, "manage.py", "qcluster"])' & \
	  worker=$$!; \
	  stop_worker() { trap '' INT TERM HUP; echo "Stopping the worker (it finishes the task in hand)."; \
	    kill -TERM $$worker 2>/dev/null; wait $$worker; exit $${1:-0}; }; \
	  trap stop_worker INT TERM HUP; \
	  $(PY) manage.py runserver $(RUN_ADDR) --noreload; \
	  stop_worker $$?

test: install browsers
	$(PY) -m pytest -n 2 --dist loadgroup

test-postgres: install browsers
	DATABASE_URL=postgres://postgres@127.0.0.1:5432/test $(PY) -m pytest -n 2 --dist loadgroup

# The tests whose outcome could hang on the hour (quiet hours, dunning, member messages), run with the
# clock at 03:00 and at 14:00 practice time (TEST_FAKE_CLOCK, see tests/conftest.py). CI runs it.
CLOCK_TESTS := tests/billing/test_card_link_and_queue.py tests/billing/test_dunning_*.py \
	tests/integrations/messaging/test_twilio_*.py tests/integrations/test_dunning_*.py tests/staff/test_card_link.py \
	tests/billing/test_notices.py
test-clock: install
	@for at in 03:00 14:00; do echo "--- clock at $$at practice time"; \
	  TEST_FAKE_CLOCK=$$at $(PY) -m pytest -n 2 --dist loadgroup -q $(CLOCK_TESTS) || exit 1; done

# What the browser tests need: Debian's Chromium and its driver (/usr/bin/chromium, /usr/bin/chromedriver).
# As root with apt-get (CI, a container) they are installed when missing; otherwise the command to run
# is printed and those tests skip.
browsers:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing Chromium and chromedriver for the browser tests (apt-get)."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else \
	  echo "The browser tests skip without Chromium. Install it once with:"; \
	  echo "  sudo apt-get install -y chromium chromium-driver"; \
	fi

bench: install
	DATABASE_URL=$${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/bench} DJANGO_SETTINGS_MODULE=medspa.settings.bench $(PY) -m benchmarks

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles
