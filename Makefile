# Two commands for a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
# One thread keeps torch's floating-point results identical from run to run,
# which nbval's exact comparison of printed tables relies on.
export OMP_NUM_THREADS := 1
export MKL_NUM_THREADS := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MPLBACKEND := Agg

.PHONY: install run test lint unit nbval bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

run: install
	$(PY) notebooks/build.py --out build

lint: install
	$(VENV)/bin/ruff check .

unit: install
	$(PY) -m pytest tests

nbval: install
ifneq ($(NOTEBOOKS),)
	$(PY) -m pytest --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg $(NOTEBOOKS)
else
	@echo "no notebooks to validate"
endif

test: lint unit nbval

bench: install
	$(PY) benchmarks/metrics.py
	$(PY) benchmarks/explain.py --no-gscorecam

clean:
	rm -rf build
