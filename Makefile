# Two commands do all the set-up on a machine with Python 3.11+ and make:
#   make run    - create/refresh .venv, then backtest, run the nightly job and the example what-ifs on the sample
#   make test   - create/refresh .venv, then lint, type-check and run the whole test suite
#   make docs   - regenerate docs/report.png from a fresh run of the sample (headless Chromium)
#                 and the README's output blocks from real runs (docs/readme.py)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test venv browser sample docs clean

venv: $(STAMP)

# re-install whenever pyproject.toml changes
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required: make PYTHON=python3.11 ...")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -c 'import pricing.market.equilibrium as e; e.warm()'  # numba's compile, cached
	touch $(STAMP)

# a backtest of the engine on the shipped sample, then the nightly run into the same
# ./pricing-runs (curves, equilibrium, guidance, intervention plan; its report shows the
# backtest's headline), then the example what-if scenarios against it
run: $(STAMP)
	$(BIN)/pricing backtest
	$(BIN)/pricing run
	$(BIN)/pricing whatif data/scenarios/*.toml --rows 8

# the HTML report's tests open it in Debian's Chromium: installed here when missing (as root
# or with sudo); PRICING_CHROMIUM=/path/to/chromium uses another one instead
browser:
	@command -v chromium >/dev/null 2>&1 || [ -n "$$PRICING_CHROMIUM" ] || { \
	  echo "installing Debian's chromium for the report tests"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium; }

test: $(STAMP) browser
	$(BIN)/ruff check pricing tests
	$(BIN)/ruff format --check pricing tests
	$(BIN)/mypy
	$(BIN)/pytest -n auto

# the README's picture of the report: a fresh run of the sample in a temporary store, its
# report opened in the Chromium the browser tests use, the top of the page saved; then the
# README's output blocks (<!-- out:NAME -->) rewritten from fresh runs of their commands
docs: $(STAMP) browser
	$(BIN)/python docs/screenshot.py
	$(BIN)/python docs/readme.py --write

# regenerate the committed sample market (documented in data/README.md)
sample: $(STAMP)
	$(BIN)/pricing simulate --segments 36 --weeks 104 --seed 20240101 --jobs-per-week 12 --out data/sample --force

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
