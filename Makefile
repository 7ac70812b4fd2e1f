# roadedge: `make demo` runs the main job, `make test` passes the tests.
# Both install what they need on a fresh machine: the venv, and with apt-get (as root) Mosquitto,
# socat, Chromium, openssl, curl and npm when missing.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
PIP   := $(VENV)/bin/pip
STAMP := $(VENV)/.setup-done
STUBS := $(VENV)/stubs

.PHONY: setup test demo lint typecheck mpy-check bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml host_tools/dispatch/web/package.json
	@missing=""; for pair in mosquitto:mosquitto mosquitto_passwd:mosquitto mosquitto_pub:mosquitto-clients mosquitto_sub:mosquitto-clients socat:socat chromium:chromium openssl:openssl curl:curl npm:npm; do \
	  command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "installing$$missing with apt-get"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  else echo "need root (or sudo) to apt-get install$$missing"; exit 1; fi; fi
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	$(PY) -m host_tools.dispatch.assets
	for port in rp2 esp32; do \
	  test -d $(STUBS)/$$port || $(PIP) install -q --target $(STUBS)/$$port micropython-$$port-stubs==1.29.0.post1; done
	touch $(STAMP)

test: setup mpy-check typecheck
	$(VENV)/bin/pytest -q tests

lint: setup
	$(VENV)/bin/ruff check firmware host_tools sim tests bench

# Every firmware file must compile for the RP2040 (armv6m) and the ESP32 (xtensawin).
mpy-check: setup
	@$(PY) -m host_tools.build check

typecheck: setup
	$(VENV)/bin/pyright -p .ci/pyright-rp2.json
	$(VENV)/bin/pyright -p .ci/pyright-esp32.json

demo: setup
	$(VENV)/bin/roadedge demo

bench: setup
	@for b in bench/*/run.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf build .pytest_cache
