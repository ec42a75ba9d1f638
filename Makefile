# Two commands set up and run everything: `make run` (the app with a demo practice) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-postgres bench install migrate seed worker web clean

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

test: install
	$(PY) -m pytest -n 2 --dist loadgroup

test-postgres: install
	DATABASE_URL=postgres://postgres@127.0.0.1:5432/test $(PY) -m pytest -n 2 --dist loadgroup

bench: install
	DATABASE_URL=$${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/bench} DJANGO_SETTINGS_MODULE=medspa.settings.bench $(PY) -m benchmarks

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles
