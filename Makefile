# The two set-up commands on a fresh machine are `make demo` and `make test`; both build .venv.
# Dependencies are locked in uv.lock (uv resolves once, installs exactly; see README).
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: venv demo test bench lint clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-extras --python $(PYTHON)
	$(VENV)/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

venv: $(VENV)/.synced

demo: venv
	$(VENV)/bin/diversity-monitor demo

test: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -n 2 --dist loadfile

bench: venv
	$(VENV)/bin/python -m bench

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/hadolint Dockerfile Dockerfile.recommender

clean:
	rm -rf $(VENV) $(TOOLS) demo-output
