# The two commands a new user needs: `make demo` (the main job) and `make test` (all tests).
# Both create .venv at the repository root and install the pinned environment into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
BPY42 := .venv-bpy42/.installed

.PHONY: demo test test-fast lint addon benchmark clean

demo: $(INSTALLED)
	$(PY) -m backend.demo

test: lint $(BPY42)
	$(PY) -m pytest

# the quick loop while working: no test that needs the shipped model, Blender renders or a window
test-fast: $(INSTALLED)
	$(PY) -m pytest -m "not slow"

lint: $(INSTALLED)
	$(PY) -m ruff check .
	$(PY) -m mypy

addon: $(INSTALLED)
	$(PY) addon/build.py

benchmark: $(INSTALLED)
	$(PY) -m backend.benchmarks.estimator

# Blender 4.2 LTS as a module, for the add-on's smoke test on the oldest supported version
# (no pyzmq here on purpose: the extension's bundled wheel must provide it).
$(BPY42): constraints.txt
	test -x .venv-bpy42/bin/python || $(PYTHON) -m venv .venv-bpy42
	.venv-bpy42/bin/python -m pip install --quiet --disable-pip-version-check bpy==4.2.0 numpy==1.26.4
	touch $@

$(INSTALLED): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) .venv-bpy42 out dist build *.egg-info
