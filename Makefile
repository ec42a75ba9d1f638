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

# Web server on 127.0.0.1:8000 and a django-q2 worker together; Ctrl-C stops both.
run: seed
	$(PY) manage.py collectstatic --noinput --verbosity 0
	@echo "Open http://127.0.0.1:8000/ (logins printed above). Ctrl-C stops the web server and the worker."
	@trap 'kill 0' INT TERM EXIT; \
	  $(PY) manage.py qcluster & \
	  $(PY) manage.py runserver 127.0.0.1:8000 --noreload; \
	  wait

test: install
	$(PY) -m pytest -n 2 --dist loadgroup

test-postgres: install
	DATABASE_URL=postgres://postgres@127.0.0.1:5432/test $(PY) -m pytest -n 2 --dist loadgroup

bench: install
	DATABASE_URL=$${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/bench} DJANGO_SETTINGS_MODULE=medspa.settings.bench $(PY) -m benchmarks

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles
