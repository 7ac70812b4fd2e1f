# roadedge: `make demo` runs the main job, `make test` passes the tests.
# Both install what they need on a fresh machine (venv, Mosquitto, Chromium, socat).
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
PIP   := $(VENV)/bin/pip
STAMP := $(VENV)/.setup-done
STUBS := $(VENV)/stubs
APT_PKGS := mosquitto socat chromium

.PHONY: setup test demo lint typecheck mpy-check bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml host_tools/dispatch/web/package.json
	@command -v mosquitto >/dev/null && command -v socat >/dev/null && command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing $(APT_PKGS) with apt-get"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(APT_PKGS); \
	  else echo "need root (or sudo) to apt-get install $(APT_PKGS)"; exit 1; fi; }
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm; }
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
