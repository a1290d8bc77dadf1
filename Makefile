# The two commands: `make run` and `make test`. Both install what they need themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARTIFACT := model/artifacts/model.joblib

.PHONY: run test lint bench install train lock clean-data scenario compose-test compose-test-plain docs docs-reference screenshots

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

$(ARTIFACT): $(STAMP) data/telco_churn.csv model/*.py
	$(PY) -m model.train

train: $(STAMP)
	$(PY) -m model.train

run: $(STAMP) $(ARTIFACT)
	$(PY) -m launcher.run_local

# The lifecycle loop on a seeded concept drift, against the stack `make run` started (README).
scenario: $(STAMP)
	$(PY) -m scripts.concept_drift_scenario

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint $(ARTIFACT)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: $(STAMP) $(ARTIFACT)
	@for script in bench/bench_*.py; do echo "== $$script"; $(PY) -m bench.$$(basename $$script .py) || exit 1; done
	@echo "== bench/gate_power.py (the promotion gate's false-promotion rate and power)"; $(PY) -m bench.gate_power

# The documentation site on http://127.0.0.1:8001 (reloads on edits); the reference pages are
# generated from the code first. `make test` builds it with --strict (tests/test_docs.py).
docs: $(STAMP)
	$(PY) -m scripts.generate_docs
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8001

docs-reference: $(STAMP)
	$(PY) -m scripts.generate_docs

# The docs' screenshots, taken from the stack `make run` started (webapp, Airflow, MLflow, a report).
screenshots: $(STAMP)
	$(PY) -m scripts.take_screenshots

# docker compose up for real: engine, offline stand-in base images, the real Dockerfiles, the flow
# proven in containers, then the scale-out overlay with a worker, a replica and the broker killed
# under load, then down -v (tests/compose/run.py; root, as in CI).
compose-test: $(STAMP)
	$(PY) -m tests.compose.run

# The plain docker-compose.yml stage only (quicker, while working on it).
compose-test-plain: $(STAMP)
	$(PY) -m tests.compose.run --plain-only

# Rebuild the pinned sets from requirements.in (needs the package index): requirements.txt (the
# whole set) and requirements/<image>.txt (what each image runs, same pins).
lock:
	rm -rf /tmp/churn-lock && $(PYTHON) -m venv /tmp/churn-lock
	/tmp/churn-lock/bin/pip install --quiet -r requirements.in
	/tmp/churn-lock/bin/pip freeze | grep -vE '^(pip|setuptools|wheel)==' > requirements.txt
	/tmp/churn-lock/bin/python -m scripts.image_requirements
