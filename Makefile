# SaliencyTrust: the two commands of the README.
#   make demo   set up everything on a fresh machine, then run the main job (synthetic cohort ->
#               maps of every method -> the four trust criteria -> HTML report)
#   make test   set up everything on a fresh machine, then run the whole test suite
# Other targets: make bench (the benchmarks), make venv, make system-deps, make clean.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# The CPU build of torch. For a GPU, see README "GPU installs".
TORCH_SPEC ?= torch==2.13.0
DEMO_OUT ?= demo-output
PYTEST_WORKERS ?= 2

.PHONY: demo test bench venv system-deps clean

$(VENV)/.installed: pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first: otherwise monai/captum resolve a multi-GB CUDA build.
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -c requirements/constraints.txt -e ".[test]"
	$(PIP) freeze --exclude-editable > $(VENV)/versions.txt
	touch $@

venv: $(VENV)/.installed

# Debian packages the tests use: a real PACS (Orthanc + DICOMweb plugin), a real DICOM
# validator (dciodvfy from dicom3tools) and cmake (configures the Slicer extension's CMake files).
# Installed only when missing; needs root (CI runs as root).
# Debian puts the server in /usr/sbin (not on a user's PATH): looked for there too.
system-deps:
	@if ! command -v dciodvfy >/dev/null \
	    || ! { command -v Orthanc >/dev/null || [ -x /usr/sbin/Orthanc ]; } \
	    || [ ! -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] \
	    || ! command -v cmake >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    orthanc orthanc-dicomweb dicom3tools cmake >/dev/null; \
	fi

demo: venv
	$(VENV)/bin/saliency-trust demo --out $(DEMO_OUT)

test: venv system-deps
	$(PY) -m pytest -n $(PYTEST_WORKERS) --durations=15

bench: venv
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
