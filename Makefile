# Shortcuts for the lab. As root each node gets its own network namespace;
# without root (or with NET=loopback) each node gets its own 127.0.x.y.
NAME ?= pgha
PROFILE ?= fast
NET ?=

.PHONY: demo test lab-up lab-down lab-status lab-bench

# Install the packages, start the lab, validate it, print the report's
# location, take the lab down.
demo:
	PGHA_LAB_NAME=$(NAME) scripts/demo.sh

# gofmt, go vet and every test, as CI runs them.
test:
	scripts/test.sh

lab-up:
	go run ./lab up --name $(NAME) --profile $(PROFILE) $(if $(NET),--net $(NET))

lab-down:
	go run ./lab down --name $(NAME)

lab-status:
	go run ./lab status --name $(NAME)

# Start-up, down time and memory, median of 5 runs, into docs/benchmarks.md.
lab-bench:
	go run ./lab bench --runs 5 --name labbench --profile $(PROFILE) --doc docs/benchmarks.md
