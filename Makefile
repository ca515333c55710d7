# The two commands a new user needs: `make demo` (the main job) and `make test` (all tests).
# Both create .venv at the repository root and install the pinned environment into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: demo test addon benchmark clean

demo: $(INSTALLED)
	$(PY) -m backend.demo

test: $(INSTALLED)
	$(PY) -m pytest

addon: $(INSTALLED)
	$(PY) addon/build.py

benchmark: $(INSTALLED)
	$(PY) -m backend.benchmarks.estimator

$(INSTALLED): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) out dist build *.egg-info
