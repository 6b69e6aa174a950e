# The two commands of the README: `make run` and `make test`.
# Both create .venv and install everything on first use; nothing by hand.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
# The CPU build of torch that these machines carry (see README, Set-up).
TORCH  ?= torch==2.13.0
ARGS   ?=

.PHONY: run test lint typecheck unit integration bench install clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.deps: pyproject.toml | $(BIN)/activate
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q "$(TORCH)"
	PYTHONWARNINGS=ignore $(PY) -m pip install -q -e '.[dev,fast]' --no-build-isolation \
		--config-settings editable_mode=strict
	touch $@

# The strict editable install links each module into build/; re-link so
# files added since the last install are importable.
install: $(VENV)/.deps
	@PYTHONWARNINGS=ignore $(PY) -m pip install -q --no-deps -e . --no-build-isolation \
		--config-settings editable_mode=strict

run: install
	$(BIN)/venom run $(ARGS)

lint: install
	$(BIN)/ruff check daemon plugins schemas tests
	$(BIN)/ruff format --check daemon plugins schemas tests

typecheck: install
	$(BIN)/mypy -p venom.daemon -p venom.plugins -p venom.schemas


test: lint typecheck
	$(BIN)/pytest --durations=15 $(ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

bench: install
	$(BIN)/venom bench $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .venom
