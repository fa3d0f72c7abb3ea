# The one test command (README, "Two commands"; .ci/run runs it too): the Go,
# Python and TypeScript suites, each setting up what it needs itself — the
# mandate binary built from this checkout (.build/mandate, for the SDKs'
# tests against a real server), a virtualenv under the checkout (.venv) and
# the TypeScript SDK's locked dependencies (npm ci). Every test starts what
# it needs: servers on 127.0.0.1:0, stores in temporary directories.
.PHONY: test test-go test-python test-typescript bench vet mandate-bin

GO      ?= go
PYTHON  ?= python3
VENV    := $(CURDIR)/.venv
# Handed to the SDKs' suites only: the Go suite's configuration tests read
# the MANDATE_* environment as the server's own.
MANDATE_BIN := $(CURDIR)/.build/mandate

test: test-go test-python test-typescript

test-go:
	$(GO) test -race ./...

# The server the SDKs' integration tests start (rebuilt when Go sources change;
# go build is a no-op when nothing did).
mandate-bin:
	$(GO) build -o $(MANDATE_BIN) ./cmd/mandate

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# (The guards let the suite run while an SDK is not yet in the checkout.)
test-python: mandate-bin $(VENV)/bin/python
	test ! -f sdk/python/pyproject.toml || $(VENV)/bin/pip install --quiet -e 'sdk/python[test,cedar]'
	test ! -f sdk/python/pyproject.toml || (cd sdk/python && MANDATE_BIN=$(MANDATE_BIN) $(VENV)/bin/python -m pytest -q)

test-typescript: mandate-bin
	test ! -f sdk/typescript/package.json || (cd sdk/typescript && npm ci --no-audit --no-fund --loglevel=error && MANDATE_BIN=$(MANDATE_BIN) npm test)

# Every Go benchmark, 100 iterations: they keep compiling and working (never
# a timed assertion; docs/performance.md has the measured runs).
bench:
	$(GO) test -run '^$$' -bench . -benchtime=100x ./...

vet:
	$(GO) vet ./...
