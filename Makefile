# Two entry points for a fresh machine: `make demo` and `make test` (see README.md).
# Every pip call passes constraints.txt so torch stays the local CPU build (torch==2.13.0).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: demo test bench install install-dev sandbox clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(PY) pyproject.toml constraints.txt
	$(PIP) torch==2.13.0
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(VENV)/bin/tailor demo

# System packages the tests need, which a fresh Debian machine lacks: bubblewrap, the only sandbox
# Python graders run in (docs/security.md; setpriv, which it also uses, comes with util-linux), and
# Debian's chromium and chromium-driver, which the console's browser tests drive headless
# (docs/console.md; one source package, so the driver always matches the browser). COMMAND:PACKAGE
# pairs; only the missing ones are installed, with one apt-get update for all of them.
SYSTEM_PACKAGES := bwrap:bubblewrap chromium:chromium chromedriver:chromium-driver

sandbox:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do \
		command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			$$missing >/dev/null || echo "note: apt-get could not install$$missing"; \
	else \
		echo "note: Python graders need bubblewrap and the console's browser tests need chromium and" \
			"chromium-driver; as root: apt-get install$$missing"; \
	fi

# lint-imports checks the layers (.importlinter) before any test runs.
test: install-dev sandbox
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

bench: install-dev sandbox
	$(PY) bench/sft_throughput.py
	$(PY) bench/serving.py
	$(PY) bench/rft.py
	$(PY) bench/batch_inference.py

clean:
	rm -rf $(VENV) .pytest_cache
