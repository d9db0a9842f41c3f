# The two commands of the README: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup test lint format docs demo clean

setup:
	@bash scripts/setup.sh

test: setup
	NNABLA_CONFIG_FILE_PATH=tests/nnabla.conf $(PY) -m pytest -n 2 tests

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

docs: setup
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html

demo: setup
	@bash scripts/demo.sh

clean:
	rm -rf docs/_build .pytest_cache .ruff_cache
