# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test docs lint install clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-compile -e '.[all,test]'
	touch $(STAMP)

install: $(STAMP)

# Trains on the embedded default faces, tracking the seed's train / test / negative errors as
# curves (held-out faces and houses, 64 of each every 5 epochs, 30 MAP steps at the first
# evaluation and 20 from the kept latents at the next: inference costs as much as training),
# then writes samples, reconstructions, interpolations and the report,
# which measures the whole held-out sets (30 MAP steps: within 4% of 300 on these faces) and
# prints its evaluation: the three errors beside
# PCA, the regime, synthesis quality and the banked latents against the prior.
demo: $(STAMP)
	rm -rf runs/demo
	$(PY) -m latentgen train --modality image --epochs 10 --out runs/demo \
	    --test-data builtin:faces-test --negative-data builtin:houses \
	    --eval-every 5 --eval-examples 64 --eval-steps 30
	$(PY) -m latentgen synthesize runs/demo --n 64 --out runs/demo/synthesized
	$(PY) -m latentgen reconstruct runs/demo --out runs/demo/reconstructed
	$(PY) -m latentgen interpolate runs/demo --out runs/demo/interpolated
	$(PY) -m latentgen report runs/demo --test-data builtin:faces-test \
	    --negative-data builtin:houses --infer-steps 30
	@echo "Pictures: runs/demo/samples/ runs/demo/synthesized/grid.png runs/demo/reconstructed/grid.png runs/demo/interpolated/grid.png"
	@echo "Curves: runs/demo/curves.png. Everything on one page: runs/demo/report.html"

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
