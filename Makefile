# The two set-up commands for a fresh machine (see README):
#   make demo   train + evaluate an ATSS detector on the bundled BCCD data, print the metrics, write PNGs
#   make test   run the test suite
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
KILN   := $(VENV)/bin/kiln
DEMO_CONFIG ?= configs/atss/atss_r18-slim_fpn_13e_bccd.py
DEMO_DIR    ?= work_dirs/demo

.PHONY: demo test install clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

# Re-install only when the dependency list changes. torch/torchvision are pinned in pyproject.toml;
# pip takes them from this machine's wheel cache.
$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(KILN) train $(DEMO_CONFIG) --work-dir $(DEMO_DIR)
	$(KILN) test $(DEMO_CONFIG) "$$(cat $(DEMO_DIR)/last_checkpoint)" --work-dir $(DEMO_DIR) --show-dir predictions
	$(PY) tools/demo_summary.py $(DEMO_DIR)

test: $(VENV)/.installed
	$(VENV)/bin/ruff check kiln tests tools benchmarks examples
	$(PY) -m pytest -q -n 2 --dist loadfile

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
