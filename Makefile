# The two set-up commands on a fresh machine are `make demo` and `make test`; both build .venv.
# Dependencies are locked in uv.lock (uv resolves once, installs exactly; see README).
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: venv demo drill test bench lint clean environment.yml

$(UV):
	@$(PYTHON) -m venv $(TOOLS)
	@$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	@echo "setting up .venv from uv.lock (quiet; see uv.lock for what it installs)..."
	@$(UV) sync --quiet --frozen --all-extras --python $(PYTHON)
	@$(VENV)/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@

venv: $(VENV)/.synced

demo: venv
	@$(VENV)/bin/diversity-monitor demo

# The incident up to the page, the stack left serving: walk the alarm runbook for real (README).
drill: venv
	@$(VENV)/bin/diversity-monitor drill

test: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -n 2 --dist loadfile

bench: venv
	$(VENV)/bin/python -m bench

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/hadolint Dockerfile Dockerfile.recommender

# The conda environment, generated from uv.lock (run after `uv lock`; a test checks they agree).
environment.yml: | $(UV)
	$(VENV)/bin/python scripts/environment_yml.py

clean:
	rm -rf $(VENV) $(TOOLS) demo-output
