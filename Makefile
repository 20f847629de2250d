# Two commands on a fresh machine: `make demo` (set up, run the end-to-end demo) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch is installed first and pinned: the CPU wheel that lies on disk. A bare `torch`, or any package that
# wants a newer one, would pull several GB of CUDA packages.
TORCH  := torch==2.13.0

.PHONY: venv node tools demo test fuzz crash bench repro vectors contracts clean

$(BIN)/wmproof: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[ml,onnx,serve,chain,repro,ray,test]"
	@touch $@

venv: $(BIN)/wmproof

# The pinned Solidity compiler (solc-js) and a real Ethereum node (anvil) for the tests: `npm ci` installs
# exactly what package-lock.json names.
node_modules/.bin/anvil: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

node: node_modules/.bin/anvil

demo: venv
	$(BIN)/wmproof demo --workdir demo-out

# strace (Debian) lets tests/test_crash_windows.py kill commands at each file-changing syscall.
tools:
	@command -v strace >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq >/dev/null && apt-get install -y -qq strace >/dev/null; } || \
		echo "warning: strace is not installed: the kill -9 tests (tests/test_crash_windows.py) will be skipped"

test: venv node tools
	$(BIN)/python -m pytest

# The scheduled fuzzing run: 1,000 cases per target (27,000 in all; CI runs 60 per target).
fuzz: venv
	WMPROOF_FUZZ_EXAMPLES=1000 $(BIN)/python -m pytest tests/test_fuzz.py

# The scheduled crash run: kill -9 at every file-changing syscall of each command, SQLite's included.
crash: venv
	WMPROOF_CRASH_ALL=1 $(BIN)/python -m pytest tests/test_crash_windows.py -s

bench: venv node
	$(BIN)/python benchmarks/summary.py
	@echo "Each benchmark alone: $(BIN)/python benchmarks/NAME.py (see its --help); on a CUDA GPU: bash benchmarks/gpu.sh"

# The reproductions (docs/reproductions/): numbers and plots, regenerated. On 2 cores: about 2 h (frontier
# stitching, the paper's 60,000 images), 45 min (the attack suite, Adi et al.), 40 min (Hitaj et al.), 2 h
# (the robustness matrix) and several hours (feature sharing, 5 seeds). The long ones resume when re-run.
repro: venv
	$(BIN)/python -m pip install --quiet -e ".[ml,onnx,serve,chain,test,repro]"
	$(BIN)/python experiments/frontier_stitching.py
	$(BIN)/python experiments/attack_suite.py
	$(BIN)/python experiments/adi_backdoor.py
	$(BIN)/python experiments/hitaj_evasion.py
	$(BIN)/wmproof robustness --workdir robustness-out
	cp robustness-out/robustness.md robustness-out/robustness.png docs/reproductions/
	cp robustness-out/results.json docs/reproductions/robustness-results.json
	$(BIN)/python experiments/feature_sharing_items.py
	$(BIN)/python experiments/feature_sharing_api.py
	$(BIN)/python experiments/feature_sharing_text.py
	$(BIN)/python experiments/feature_sharing.py

# Rebuild the registry contract's committed artifact (tests check that a rebuild is byte-identical).
contracts: node
	node contracts/build.js

vectors: venv
	$(BIN)/python docs/vectors/make_vectors.py

clean:
	rm -rf $(VENV) node_modules demo-out *.egg-info
