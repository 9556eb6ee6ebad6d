# Herald — `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export UV_LINK_MODE ?= copy
PYTHON ?= python3
# uv from PATH, else the one `make` installs into this Python with pip
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
PYTEST_ARGS ?=

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

.PHONY: uv
uv:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv

.PHONY: install
install: uv ## install the Python workspace, Kafka's jars, the Weaviate build, PostgreSQL and Chromium (cached by version)
	$(UV) sync --frozen
	$(UV) run herald-stack install

.PHONY: up
up: install ## start Kafka (KRaft), PostgreSQL, Weaviate, the SMTP server and CalDAV (Radicale); wait until healthy
	$(UV) run herald-stack up

.PHONY: down
down: ## stop the local stack (data stays in .stack/)
	-$(UV) run herald-stack down

.PHONY: status
status: ## show which parts of the stack are up
	$(UV) run herald-stack status

.PHONY: demo
demo: up ## run the sample tenant's events through all six services and print what happened
	$(UV) run herald-demo

.PHONY: test
test: up lint ## lint, then run the whole suite against the real stack
	$(UV) run pytest $(PYTEST_ARGS)

.PHONY: lint
lint: uv ## ruff, import contracts (services never import each other), mypy on herald-core, generated code current
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run lint-imports
	$(UV) run mypy libs/herald-core/src
	$(MAKE) --no-print-directory proto generate >/dev/null
	git diff --exit-code -- libs/herald-core/src/herald_core/grpc docs deploy/k8s || \
		(echo "generated files are stale: run 'make proto generate' and commit" && exit 1)

.PHONY: proto
proto: uv ## regenerate gRPC stubs from proto/ into herald-core
	$(UV) run python -m grpc_tools.protoc -Iproto --python_out=libs/herald-core/src/herald_core/grpc \
		--grpc_python_out=libs/herald-core/src/herald_core/grpc --pyi_out=libs/herald-core/src/herald_core/grpc \
		proto/herald/v1/*.proto
	sed -i 's/^from herald\.v1 import/from herald_core.grpc.herald.v1 import/' libs/herald-core/src/herald_core/grpc/herald/v1/*_grpc.py
	touch libs/herald-core/src/herald_core/grpc/__init__.py libs/herald-core/src/herald_core/grpc/herald/__init__.py \
		libs/herald-core/src/herald_core/grpc/herald/v1/__init__.py

.PHONY: generate
generate: uv ## regenerate JSON Schemas, the AsyncAPI document and the Strimzi topics/users from herald-core
	$(UV) run python -m herald_core.generate --root .

.PHONY: bench
bench: up ## throughput and latency against raw aiokafka, guard decisions, the executor's tools, search at 10k chunks, the planner's timers, transitions and prompt cache, reading replies and answering them, a campaign task's batch; JSON + PNG in bench/results/
	$(UV) run python -m bench.run
	$(UV) run python -m bench.guard
	$(UV) run python -m bench.guard_kafka
	$(UV) run python -m bench.executor
	$(UV) run python -m bench.retrieval
	$(UV) run python -m bench.planner
	$(UV) run python -m bench.planner_cache
	$(UV) run python -m bench.replies
	$(UV) run python -m bench.tasks

.PHONY: bench-tasks
bench-tasks: up ## a defined campaign task over 1,000 contacts: POST /v1/tasks to its batch proposed, against a raw aiokafka hop
	$(UV) run python -m bench.tasks

.PHONY: bench-replies
bench-replies: up ## reading the project's reply table without an LLM (rules, embeddings, both), and reply → answer proposed against a raw aiokafka hop
	$(UV) run python -m bench.replies

.PHONY: bench-planner
bench-planner: up ## the planner's engine: timer lateness at 10k pending, transitions/s against a raw aiokafka hop, the prompt cache's share
	$(UV) run python -m bench.planner
	$(UV) run python -m bench.planner_cache

.PHONY: bench-executor
bench-executor: up ## the executor's four tools through Kafka at a steady rate each, against a raw aiokafka hop (p50/p95/p99)
	$(UV) run python -m bench.executor

.PHONY: bench-retrieval
bench-retrieval: up ## hybrid search latency over >= 10k chunks (with and without embedding), ingestion chunks/s
	$(UV) run python -m bench.retrieval

.PHONY: eval-retrieval
eval-retrieval: up ## retrieval quality (NDCG@10, recall@20, MRR), latency, and the abstain signal's precision/recall on held-out queries; JSON + PNG
	eval "$$($(UV) run herald-stack env)" && $(UV) run herald-retrieval eval --kb samples/acme/kb \
		--queries samples/acme/eval/retrieval.jsonl --unanswerable samples/acme/eval/unanswerable.jsonl --out bench/results

FUZZ_HTTP_CASES ?= 10000
FUZZ_TOPIC_RECORDS ?= 2000

.PHONY: fuzz
fuzz: up ## the fuzz suite at length: 10,000 mutated requests at the ingest edges, 2,000 records on the consumed topics; JSON summary in bench/results/fuzz.json, service logs in .stack/fuzz/
	HERALD_FUZZ_HTTP_CASES=$(FUZZ_HTTP_CASES) HERALD_FUZZ_TOPIC_RECORDS=$(FUZZ_TOPIC_RECORDS) \
		HERALD_FUZZ_SETTLE_SECONDS=240 HERALD_FUZZ_SUMMARY=bench/results/fuzz.json \
		$(UV) run pytest tests/fuzz --timeout=3600 --basetemp=.stack/fuzz $(PYTEST_ARGS)

.PHONY: clean-stack
clean-stack: down ## stop the stack and delete its data (not the artifact cache)
	rm -rf .stack
