# Two commands for a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
# Debian's chromium (`apt-get install chromium`) drives the browser check; playwright never
# downloads a browser of its own.
CHROMIUM ?= /usr/bin/chromium
# One thread keeps torch's floating-point results identical from run to run,
# which nbval's exact comparison of printed tables relies on.
export OMP_NUM_THREADS := 1
export MKL_NUM_THREADS := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MPLBACKEND := Agg

.PHONY: install run test lint unit nbval browser-test bench clean

install: $(STAMP)

# constraints.txt holds the exact versions the notebooks' stored outputs were made with.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,notebooks]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	# Compile the metrics' numba kernels once (about 10 s); every later process loads them.
	$(PY) -c "import qgnb.metrics.fused as f; f.compile_all()"
	touch $(STAMP)

run: install
	$(PY) notebooks/build.py --out build

build/index.html: $(STAMP) $(NOTEBOOKS) notebooks/build.py
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

# Opens every page of build/ (built first if missing or older than the notebooks) in headless
# chromium with the network cut off: fails on console errors, outside requests, undrawn figures.
browser-test: install build/index.html
	$(PY) notebooks/check_pages.py build --chromium $(CHROMIUM)

bench: install
	$(PY) benchmarks/metrics.py
	$(PY) benchmarks/explain.py --no-gscorecam

clean:
	rm -rf build
