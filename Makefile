# Ganshou — the two commands: `make run` and `make test`. Everything else is a step of them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
STACK := deploy/local/stack.sh

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: ## install what is missing (apt, uv + Python packages, Kafka jars, grpcurl)
	@bash deploy/local/install.sh

proto: ## regenerate the Python code from proto/ (commit the result)
	uv run python tools/genproto.py

lint: ## buf lint and breaking-change check against main
	uv run buf lint
	@bash tools/buf_breaking.sh

up: install ## start the local stack: Kafka, PostgreSQL, Prometheus
	@bash $(STACK) up

down: ## stop the services and the local stack (leaves state in .run/)
	@bash deploy/local/services.sh down
	@bash $(STACK) down

stop: down ## same as down

status: ## what is running
	@bash $(STACK) status
	@bash deploy/local/services.sh status

run: up ## install, start the stack and every service, load the demo town
	@bash deploy/local/services.sh up
	@bash deploy/local/services.sh demo
	@bash deploy/local/services.sh info

test: install ## all tests: unit, then integration against the real stack
	@bash tools/test.sh

test-unit: ## unit tests only (no infrastructure)
	uv run pytest -m "not integration" -q

bench: install ## benchmarks; results in bench/results/
	@bash tools/bench.sh

soak: install ## the reliability suite at full size (~1 h); writes docs/reliability.md
	@bash tools/soak.sh

reset: down ## stop everything and delete the local state (keeps downloads)
	@[ ! -L .run/postgres ] || rm -rf "$$(readlink -f .run/postgres)"
	rm -rf .run/postgres .run/kafka/data-* .run/prometheus .run/pids .run/logs .run/secrets.env .run/metrics-generation

clean: down ## stop everything and delete .run/ (all local state and downloads)
	@[ ! -L .run/postgres ] || rm -rf "$$(readlink -f .run/postgres)"
	rm -rf .run

.PHONY: help install proto lint up down stop status run test test-unit bench soak reset clean
