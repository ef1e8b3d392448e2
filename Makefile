# Clientdesk: `make run` starts the whole thing on SQLite; `make test` runs the whole suite.
# `make run` serves every route, event streams included, from one ASGI server on one port; in
# production the Procfile splits request/response (`web`, WSGI) from streams (`events`, ASGI)
# behind a reverse proxy (deploy/nginx.conf, deploy/Caddyfile).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
DEPS_HASH := $(shell sha1sum pyproject.toml | cut -c1-12)
RUN_STAMP := $(VENV)/.installed-run-$(DEPS_HASH)
DEV_STAMP := $(VENV)/.installed-dev-$(DEPS_HASH)

.PHONY: run test lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@ $(RUN_STAMP)

run: $(RUN_STAMP)
	@mkdir -p var
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) manage.py load_demo
	$(PY) manage.py load_demo_templates
	@echo "Client's online cabinet for demo client CRM-000001 (one-time link, 15 minutes):"
	@$(PY) manage.py portal_link CRM-000001 --base-url http://127.0.0.1:$(PORT) | tail -n 1
	@echo "Clientdesk on http://127.0.0.1:$(PORT)/ with a delivery worker (Ctrl-C stops both)"
	@CLIENTDESK_ALLOW_PRIVATE_WEBHOOK_URLS=1 CLIENTDESK_REQUIRE_2FA_FOR= exec bash -c "$$RUN_BOTH"

# `make run`'s two processes. Ctrl-C reaches both (they share the terminal's process group); a
# SIGTERM, or either one exiting, stops the other: SIGTERM (open event streams end, the worker
# releases what it has not finished, granian kills a worker process of its own still busy after
# 5 s), then SIGKILL to whatever is left after STOP_SECONDS: nothing stuck outlives `make run`.
STOP_SECONDS ?= 10
define RUN_BOTH
$(PY) manage.py run_worker & worker=$$!
$(VENV)/bin/granian --interface asgi --no-ws clientdesk.asgi:application --host 127.0.0.1 \
	--port $(PORT) --log-level warning --workers-kill-timeout 5 & web=$$!
stop() {
	trap '' INT TERM
	processes="$$worker $$web $$(pgrep -P $$web)"
	kill -TERM $$worker $$web 2>/dev/null
	for _ in $$(seq $$(( $(STOP_SECONDS) * 10 ))); do
		kill -0 $$processes 2>/dev/null || exit 0
		sleep 0.1
	done
	echo "Still running after $(STOP_SECONDS) s: killed." >&2
	kill -KILL $$processes 2>/dev/null
	exit 1
}
trap stop INT TERM
wait -n
stop
endef
export RUN_BOTH


lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy src

# Most tests wait on real servers, browsers and databases they start, so the suite runs in
# TEST_WORKERS processes (pytest-xdist; each has its own test database); TEST_WORKERS=0 runs it in
# this one process. A failed test is run again up to twice (pytest-rerunfailures) and listed as
# rerun in the summary: those are timing on a loaded machine to look at, not to ignore.
TEST_WORKERS ?= 4
test: lint
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --reruns 2 --reruns-delay 1

bench: $(DEV_STAMP)
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) var
