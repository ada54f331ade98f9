# mailstack: `make up` runs the lab, `make test` runs every test. Needs Python 3.11+,
# a Docker engine and Compose v2 (`sudo bash .ci/engine.sh` provides both on Debian).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: up down clean build render test unit check-lab queue load bench

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*; touch $@

up: $(INSTALLED)  ## certificates, configuration, images, then start the lab and wait until healthy
	$(PY) -m stack up

down: $(INSTALLED)  ## stop the lab; mail and queue are kept in their volumes
	$(PY) -m stack down

clean: $(INSTALLED)  ## stop the lab, delete its volumes and build/
	$(PY) -m stack clean

build: $(INSTALLED)  ## certificates, configuration and images, without starting anything
	$(PY) -m stack build

render: $(INSTALLED)  ## certificates and configuration only (no Docker)
	$(PY) -m stack render

test: $(INSTALLED)  ## unit tests, then the end-to-end harness against a lab started for the run
	$(PY) -m pytest tests harness

unit: $(INSTALLED)  ## unit tests only (no Docker)
	$(PY) -m pytest tests

check-lab: $(INSTALLED)  ## the end-to-end harness against the lab that `make up` started (tests that need labs of their own run in `make test`)
	$(PY) -m pytest harness --target build/target.json -m "not own_lab"

queue: $(INSTALLED)  ## what waits in Postfix's queue, and why
	$(PY) -m stack queue

N ?= 2000
C ?= 20
load: $(INSTALLED)  ## N messages (default 2000) at concurrency C (default 20) against the lab, each accounted for
	$(PY) -m harness load --target build/target.json -n $(N) -c $(C) --services submissions,submission,smtp

bench: $(INSTALLED)  ## every benchmark against the lab, side by side with its baseline; writes benchmarks/RESULTS.md
	$(PY) -m pip install --quiet -e '.[test,bench]'
	@command -v testssl >/dev/null || command -v testssl.sh >/dev/null || { \
	    echo "installing testssl.sh (the conformance benchmark's baseline) from Debian"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq testssl.sh >/dev/null; }
	$(PY) -m benchmarks.lifecycle --cold --make-test
	$(PY) -m benchmarks.conformance_time
	$(PY) -m benchmarks.handshake
	$(PY) -m benchmarks.sessions
	$(PY) -m benchmarks.throughput
	$(PY) -m benchmarks.report
