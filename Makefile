# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)

.PHONY: install services lint test demo stop

install:
	bash scripts/install.sh

services: install
	bash scripts/services.sh

lint: install
	cargo fmt --all -- --check
	python scripts/check-template.py

test: services lint
	. .run/services.env && cargo nextest run --no-fail-fast

demo: services
	bash scripts/demo.sh

stop:
	-for p in .run/*.pid; do [ -f "$$p" ] && kill "$$(cat $$p)" 2>/dev/null; rm -f "$$p"; done
