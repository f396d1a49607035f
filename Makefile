# Shortcuts for the lab. As root each node gets its own network namespace;
# without root (or with NET=loopback) each node gets its own 127.0.x.y.
# BOOT=1 makes every node a Debian 12 machine booting its user data (root).
NAME ?= pgha
PROFILE ?= fast
NET ?=
BOOT ?=

.PHONY: demo test lab-up lab-down lab-status lab-bench

# Install the packages, start the lab, validate it, print the report's
# location, take the lab down.
demo:
	PGHA_LAB_NAME=$(NAME) scripts/demo.sh $(if $(BOOT),--boot)

# gofmt, go vet and every test, as CI runs them.
test:
	scripts/test.sh

lab-up:
	go run ./lab up --name $(NAME) --profile $(PROFILE) $(if $(NET),--net $(NET)) $(if $(BOOT),--boot)

lab-down:
	go run ./lab down --name $(NAME)

lab-status:
	go run ./lab status --name $(NAME)

# Start-up, down time and memory, median of 5 runs, into docs/benchmarks.md.
lab-bench:
	go run ./lab bench --runs 5 --name labbench --profile $(PROFILE) --doc docs/benchmarks.md
