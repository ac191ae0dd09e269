# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV := $(CURDIR)/.venv
PG_CTL = $$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/pg_ctl
export PATH := $(VENV)/bin:$(PATH)

.PHONY: install services lint test demo deploy-check bench bench-org stop

install:
	bash scripts/install.sh

services: install
	bash scripts/services.sh

# The templates through the real SAM CLI too (pinned by scripts/install.sh): `sam validate --lint`
# is SAM's parsing, then cfn-lint as a library, offline: no AWS call and no credentials; the region
# is the one cfn-lint checks the resource types against. SAM_CLI_TELEMETRY=0: no usage data sent.
lint: export SAM_CLI_TELEMETRY = 0
lint: install
	cargo fmt --all -- --check
	if cargo clippy --version >/dev/null 2>&1; then cargo clippy --workspace --all-targets -- -D warnings; \
	else echo "lint: clippy not installed (scripts/install.sh could not add it): skipped"; fi
	python scripts/check-template.py
	sam validate --lint --region us-east-1 --template template.yaml
	sam validate --lint --region us-east-1 --template source-account.yaml

test: services lint
	. .run/services.env && cargo nextest run --workspace --no-fail-fast

demo: services
	bash scripts/demo.sh

# Builds the arm64 bootstrap as `sam build` does and runs it once under qemu-aarch64 (a dry run of
# the demo organisation). When the aarch64 target is missing and rustup cannot fetch it, the script
# says so and exits 3 (make reports "Error 3"); `bash scripts/deploy-check.sh` returns that code.
deploy-check: services
	bash scripts/deploy-check.sh

# The whole function as a user runs it (docs/benchmarks.md): the release binary on
# one warehouse of 2,000, 20,000 and 100,000 tables and on 200 warehouses of 200, in three
# configurations. Knobs: BENCH_SIZES, BENCH_ORG, BENCH_LATENCY_MS, BENCH_STATEMENT_MS, ...
bench: export EMULATOR_PROFILE = release
bench: services
	cargo build --release --bin redshift-registry
	. .run/services.env && cargo bench --bench read_warehouse

# Fan-out at organisation scale (docs/fan-out.md, Fan-out at 1,000 accounts): the release binary as planner
# and as N local workers. Knobs: ORG_BENCH_ACCOUNTS, ORG_BENCH_REGIONS, ORG_BENCH_WORKERS, ...
bench-org: services
	cargo build --release --bin redshift-registry
	. .run/services.env && cargo bench --bench org

stop:
	@-for p in .run/*.pid; do [ -f "$$p" ] && kill "$$(cat $$p)" 2>/dev/null; rm -f "$$p"; done
	@-[ -f .run/pg.datadir ] && { if [ "$$(id -u)" = 0 ]; then runuser -u postgres -- $(PG_CTL) -D "$$(cat .run/pg.datadir)" -m fast stop; else $(PG_CTL) -D "$$(cat .run/pg.datadir)" -m fast stop; fi; } >/dev/null 2>&1; rm -f .run/pg.port
