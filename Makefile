# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test docs lint install clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-compile -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Trains on the embedded default faces, then writes samples, reconstructions, interpolations
# and the report, which measures held-out faces and houses beside the training faces (the
# seed's train / test / negative study) and prints its evaluation: the three errors beside
# PCA, the regime, synthesis quality and the banked latents against the prior. (Tracking the
# errors during training, --test-data with --eval-every, would cost the demo a minute.)
demo: $(STAMP)
	rm -rf runs/demo
	$(PY) -m latentgen train --modality image --epochs 40 --out runs/demo
	$(PY) -m latentgen synthesize runs/demo --n 64 --out runs/demo/synthesized
	$(PY) -m latentgen reconstruct runs/demo --out runs/demo/reconstructed
	$(PY) -m latentgen interpolate runs/demo --out runs/demo/interpolated
	$(PY) -m latentgen report runs/demo --test-data builtin:faces-test \
	    --negative-data builtin:houses
	@echo "Pictures: runs/demo/samples/ runs/demo/synthesized/grid.png runs/demo/reconstructed/grid.png runs/demo/interpolated/grid.png"
	@echo "Everything on one page: runs/demo/report.html"

test: $(STAMP)
	$(PY) -m pytest -q

# Regenerates docs/cli.md from the code (a test fails when the committed file is stale).
docs: $(STAMP)
	$(PY) -m latentgen_cli.reference docs/cli.md

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) runs build *.egg-info
