# make demo  - the main job on an embedded local Ray (creates .venv on first use)
# make test  - the test suite (what CI runs)
# make bench - the 100k-cell benchmarks (long; not part of the tests)
# make reproduce - every paper's headline beside ours, one report (quick budget, ~15 min)
PY := .venv/bin/python
VENV_STAMP := .venv/.installed

.PHONY: demo test bench evaluate lint clean

$(VENV_STAMP): pyproject.toml
	test -x $(PY) || python3.11 -m venv .venv || python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: this exact CPU build is available offline; a looser pin pulls GBs of CUDA wheels.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(VENV_STAMP)

demo: $(VENV_STAMP)
	.venv/bin/slicing demo --out out/

test: $(VENV_STAMP) system-deps lint
	$(PY) -m pytest -q tests

# Debian's redis-server (the GCS fault-tolerance test, tests/runtime/test_gcs_ft.py) and nginx (the shedding front,
# slicing/serve/front.py: `slicing bench overload`, tests/serve/test_front.py): installed when missing
SYSTEM_PACKAGES := redis-server:redis-server nginx:nginx
.PHONY: system-deps
system-deps:
	@for pair in $(SYSTEM_PACKAGES); do cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  PATH="$$PATH:/usr/sbin" command -v $$cmd >/dev/null && continue; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  echo "installing $$pkg (apt-get)"; \
	  $$SUDO apt-get install -y -q $$pkg >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q $$pkg >/dev/null; }; \
	  PATH="$$PATH:/usr/sbin" command -v $$cmd >/dev/null || { echo "error: $$pkg could not be installed"; exit 1; }; \
	done

bench: $(VENV_STAMP)
	.venv/bin/slicing bench --cells 100000 --json
	.venv/bin/slicing bench --cells 100000 --shards 2 --json

# what-if studies: the 300-cell example (about a minute) and the 100k-cell, 96-period benchmark study (about 8 min
# on 2 cores; a cluster spreads its runs)
.PHONY: whatif bench-whatif
whatif: $(VENV_STAMP)
	.venv/bin/slicing whatif studies/regional.yaml --out out/whatif/regional --json

bench-whatif: $(VENV_STAMP)
	.venv/bin/slicing whatif studies/city100k.yaml --out out/whatif/city100k --json

# every paper's headline over 3 seeds, one report (out/reproduce/report.html): the quick budget (about 15 min on
# 2 cores); reproduce-full runs the paper-length settings (hours)
.PHONY: reproduce reproduce-full
reproduce: $(VENV_STAMP)
	PYTHONHASHSEED=0 .venv/bin/slicing reproduce all --quick --out out/reproduce --json

reproduce-full: $(VENV_STAMP)
	PYTHONHASHSEED=0 .venv/bin/slicing reproduce all --out out/reproduce-full --json

evaluate: $(VENV_STAMP)
	.venv/bin/slicing evaluate --scenario scenarios/idla.yaml --out out/idla --json

# the layer contracts of pyproject.toml (import-linter) and ruff's explicit rule list, before any test runs
lint: $(VENV_STAMP)
	.venv/bin/lint-imports
	.venv/bin/ruff check slicing tests serve_app.py

clean:
	rm -rf out .pytest_cache

# make serve - the HTTP service on 127.0.0.1:8000 over a 300-cell simulated population (Ctrl-C stops it)
.PHONY: serve
serve: $(VENV_STAMP)
	.venv/bin/slicing serve --host 127.0.0.1 --port 8000
