# make demo | make test | make check | make bench   (each sets itself up from scratch)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

# Debian packages: the browser and Redis tests use chromium and redis-server (they skip,
# saying why, without them), the OCR tests tesseract; the benchmarks read real photos and
# clip-art, bench/ocr.py renders text in these fonts and bench/cli_start.py times with hyperfine;
# wordnet-base gives text queries their concept expansion (tests write a tiny WordNet).
APT_TEST := chromium redis-server tesseract-ocr tesseract-ocr-eng
APT_BENCH := tesseract-ocr tesseract-ocr-eng fonts-dejavu-core fonts-liberation fonts-freefont-ttf \
	gnome-backgrounds tuxpaint-stamps-default mate-backgrounds sway-backgrounds \
	plasma-workspace-wallpapers ukui-wallpapers lomiri-wallpapers openclipart-png wesnoth-1.16-data \
	hyperfine wordnet-base

.PHONY: setup demo test check bench bench-full bench-10m clean apt-test apt-bench

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned to the CPU build, so no dependency can pull a CUDA build
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	# OCR: without its declared opencv-python (we have the headless cv2); see pyproject.toml
	$(PIP) install -q -c constraints.txt --no-deps 'rapidocr-onnxruntime==1.4.4'
	touch $(STAMP)

setup: $(STAMP)

$(BENCH_STAMP): $(STAMP)
	$(PIP) install -q -c constraints.txt -e '.[dev,bench]'
	touch $(BENCH_STAMP)

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

# 100k scale (over an hour on 2 cores, not timed as a whole since the copy-detection,
# watch, OCR, stage and backend runs were added; each takes what its section of
# BENCHMARKS.md says); results and plots under bench/results/, their tables copied into
# BENCHMARKS.md by bench/report.py
bench: $(BENCH_STAMP) apt-bench
	$(PY) bench/ingest.py
	$(PY) bench/ingest.py --data stamps
	$(PY) bench/encoders.py
	$(PY) bench/crossover.py
	$(PY) bench/peers.py --data clustered --n 100000
	$(PY) bench/peers.py --data real-text
	$(PY) bench/peers.py --data real-image
	$(PY) bench/filters.py --n 100000
	$(PY) bench/search.py
	$(PY) bench/relevance.py
	$(PY) bench/similar.py
	$(PY) bench/dedup.py
	$(PY) bench/batching.py
	$(PY) bench/security.py
	$(PY) bench/originals.py
	$(PY) bench/copydetect.py
	$(PY) bench/watch.py
	$(PY) bench/watch.py --burst 10000 --text-encoder none
	$(PY) bench/ocr.py
	$(PY) bench/encode.py
	$(PY) bench/cli_start.py
	$(PY) bench/stages.py --n 100000
	$(PY) bench/backends.py --n 100000 --backends local,server
	$(PY) bench/report.py

# 1M scale: the side-by-side, filtered and backend runs at 1,000,000 × 512-d (about two
# hours, an hour of it local against the Milvus 2.3.5 server; Milvus Lite is left out
# above --milvus-max-n, 200k, see BENCHMARKS.md); against_older.py builds the
# 2026-11-21 code's own collection on its first run (~10 min), then 7 minutes a run;
# paired_older.py then holds both codes open at once (4 minutes)
bench-full: $(BENCH_STAMP) apt-bench
	$(PY) bench/peers.py --data clustered --n 1000000
	$(PY) bench/query_steps.py --n 1000000
	$(PY) bench/against_older.py --n 1000000
	$(PY) bench/paired_older.py --n 1000000 --rounds 30 --both-orders
	$(PY) bench/filters.py --n 1000000
	$(PY) bench/stages.py --n 1000000 --memory-budget-mb 400
	$(PY) bench/backends.py --n 1000000 --backends server
	$(PY) bench/backends.py --n 1000000 --backends local
	$(PY) bench/report.py

# 10M × 512-d through the engine: catalog, float16 vector files, the index auto picks
# under a 4 GB budget (IVF-PQ), re-scored from the vector files. Not part of `make bench`:
# hours on 2 cores (BENCHMARKS.md gives the rates measured at 1M and the estimate);
# resumable (run it again after an interruption), progress on stderr, ~16 GB of disk.
bench-10m: $(BENCH_STAMP)
	nice -n 10 $(PY) bench/tenmillion.py --n 10000000
	$(PY) bench/report.py

clean:
	rm -rf $(VENV) demo-collection
