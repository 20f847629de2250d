# Two commands on a fresh machine: `make demo` (set up, run the end-to-end demo) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch is installed first and pinned: the CPU wheel that lies on disk. A bare `torch`, or any package that
# wants a newer one, would pull several GB of CUDA packages.
TORCH  := torch==2.13.0

.PHONY: venv demo test bench vectors clean

$(BIN)/wmproof: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[ml,test]"
	@touch $@

venv: $(BIN)/wmproof

demo: venv
	$(BIN)/wmproof demo --workdir demo-out

test: venv
	$(BIN)/python -m pytest

bench: venv
	$(BIN)/python benchmarks/engine.py

vectors: venv
	$(BIN)/python docs/vectors/make_vectors.py

clean:
	rm -rf $(VENV) demo-out *.egg-info
