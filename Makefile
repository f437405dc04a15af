# The README's two commands: `make demo` (run it: the local database, a market session and
# a report) and `make test` (test it). Each installs what is missing first, so both work on
# a fresh machine. `make up` / `make down` / `make status` manage the local database alone.
.PHONY: deps up down status test lint bench demo adopt process-queue process-queue-continuous

# What sqlfluff lints, here and in .pre-commit-config.yaml (tests/test_tooling.py checks
# that both name the same paths).
LINT_PATHS := supabase/ demo/ tests/platform/

deps:
	@bash scripts/deps.sh

up: deps
	@bash scripts/db.sh up

down:
	@bash scripts/db.sh down

status:
	@bash scripts/db.sh status

lint: deps
	.venv/bin/sqlfluff lint $(LINT_PATHS)

test: deps lint
	.venv/bin/pytest $(PYTEST_ARGS)

# The performance figures (docs/benchmark.md): its own throwaway cluster, ~15 minutes at
# full scale. BENCH_ARGS="--scale small --runs 1" for a quick look.
BENCH_ARGS ?= --scale full --runs 3
bench: deps
	.venv/bin/python tests/bench.py $(BENCH_ARGS)

# The queue processor by hand against the local database (`make up` first), or PAUV_DB_URL;
# the same script as `npm run process-queue:all` / `npm run process-queue:continuous`.
process-queue:
	@bash scripts/process-queue.sh all

process-queue-continuous:
	@bash scripts/process-queue.sh continuous

# The README's "run it" command: `make up`, then a market session and a report.
demo: deps
	@bash scripts/demo.sh

# Deploy onto an existing Pauv project (docs/adoption.md): the linked project, or
# `make adopt DB_URL=postgresql://...` for any database.
adopt: deps
	@bash scripts/adopt.sh $(if $(DB_URL),--db-url '$(DB_URL)')
