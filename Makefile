# latent4d: `make demo` and `make test` set up everything they need first (scripts/setup.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
L4D := $(VENV)/bin/latent4d
PYTEST_ARGS ?=

.PHONY: setup demo test test-fast bench lint format-check typecheck check clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(L4D) demo

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# the checks CI runs beside the tests (.ci/run); pre-commit runs the same hooks
lint: setup
	$(VENV)/bin/ruff check src tests scripts viewer

# not yet in CI: formatting the whole tree at line length 110 pushes some functions past the
# 80-line limit that tests/trunk/test_code_shape.py enforces; files are formatted as they are split
format-check: setup
	$(VENV)/bin/ruff format --check src tests scripts viewer

typecheck: setup
	$(VENV)/bin/mypy

check: lint typecheck test

bench: setup
	@for b in $$($(PY) -c "from latent4d.bench import registry; print(' '.join(sorted(registry())))"); do \
		$(L4D) bench $$b || exit 1; done
	$(L4D) bench readme

clean:
	rm -rf outputs .pytest_cache
