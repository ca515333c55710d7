# The two commands a new user needs: `make demo` (the main job) and `make test` (all tests).
# Both create .venv at the repository root and install the pinned environment into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
BPY42 := .venv-bpy42/.installed
BPY52 := .venv-bpy52/.installed
# Blender 5.1+ runs Python 3.13: pyenv's, else one on PATH
PYTHON313 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) $(shell command -v python3.13))

.PHONY: demo test test-fast test-shuffled screenshots lint addon benchmark clean

demo: $(INSTALLED)
	$(PY) -m backend.demo

test: lint $(BPY42) $(BPY52)
	$(PY) -m pytest

# `make test` in a random order (pytest-randomly: it prints its seed at the top, and
# `.venv/bin/python -m pytest -p randomly --randomly-seed=N` replays that order): no test may lean
# on another having run before it
test-shuffled: lint $(BPY42) $(BPY52)
	$(PY) -m pytest -p randomly

# the quick loop while working: no test that needs the shipped model, Blender renders or a window
test-fast: $(INSTALLED)
	$(PY) -m pytest -m "not slow"

# the window tests, their screenshots written into docs/screenshots (the README's and the docs'
# pictures); every other run leaves them in its temporary folder, so a checkout stays clean
screenshots: $(INSTALLED)
	FACE_NORMALS_SCREENSHOTS=docs/screenshots $(PY) -m pytest tests/window

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

# Blender 5.2 as a module on Python 3.13, for the same smoke test on the newest version and Python
$(BPY52): constraints.txt
	@test -n "$(PYTHON313)" || { echo "error: bpy 5.2 needs Python 3.13 (set PYTHON313=/path/to/python3.13)"; exit 1; }
	test -x .venv-bpy52/bin/python || $(PYTHON313) -m venv .venv-bpy52
	.venv-bpy52/bin/python -m pip install --quiet --disable-pip-version-check bpy==5.2.3
	touch $@

$(INSTALLED): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) .venv-bpy42 .venv-bpy52 out dist build *.egg-info
