# carscope: `make demo` runs the whole pipeline on the CPU; `make test` runs the tests.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM ?= /usr/bin/chromium

.PHONY: install demo test test-fast lint bench mutate clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@echo "install: the virtual environment $(VENV)"
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@echo "install: carscope and its pinned packages (pip install -e '.[dev,ray]')"
	@$(BIN)/python -m pip install -q -e '.[dev,ray]'
	@if [ ! -x $(CHROMIUM) ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing chromium with apt-get"; \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) >/dev/null || \
		echo "apt-get could not install chromium"; \
	fi
	@if [ ! -x $(CHROMIUM) ]; then \
		if [ "$$(id -u)" = 0 ]; then $(BIN)/python -m playwright install --with-deps chromium; \
		else $(BIN)/python -m playwright install chromium; fi || echo "install: playwright could not install Chromium"; \
	fi
	@$(BIN)/python -c "from carscope.crawler.browser import browser_available as ok; raise SystemExit(0 if ok() else 1)" || \
		{ if [ "$$CARSCOPE_REQUIRE_BROWSER" = 1 ]; then echo "install: no Chromium, and CARSCOPE_REQUIRE_BROWSER=1"; \
		  exit 1; else echo "install: no Chromium: the browser tests will skip (and say so)"; fi; }
	@touch $(STAMP)
	@echo "install: done"

demo: install
	$(BIN)/carscope demo

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check .

mutate: install
	$(BIN)/python -m pip install -q "mutmut>=2.5,<3"
	tools/mutate.sh

bench: install
	$(BIN)/carscope bench all --scale small

clean:
	rm -rf build *.egg-info .pytest_cache demo-work
