# make demo | make test | make check | make bench   (each sets itself up from scratch)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

# Debian packages: the browser and Redis tests use chromium and redis-server (they skip,
# saying why, without them); the benchmarks read real photos and clip-art.
APT_TEST := chromium redis-server
APT_BENCH := gnome-backgrounds tuxpaint-stamps-default

.PHONY: setup demo test check bench clean apt-test apt-bench

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned to the CPU build, so no dependency can pull a CUDA build
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "apt-get install$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "note: apt-get install$$missing (as root) for the tests or benchmarks that use them"; fi; \
	fi
endef

apt-test:
	$(call apt_install,$(APT_TEST))

apt-bench:
	$(call apt_install,$(APT_BENCH))

demo: setup
	$(PY) examples/demo.py

test: setup apt-test
	$(PY) -m pytest -q -p no:cacheprovider

check: setup
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/mypy

bench: setup apt-bench
	$(PY) bench/ingest.py
	$(PY) bench/search.py
	$(PY) bench/relevance.py
	$(PY) bench/dedup.py
	$(PY) bench/batching.py

clean:
	rm -rf $(VENV) demo-collection
