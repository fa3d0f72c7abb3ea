# The one test command (README, "Two commands"; .ci/run runs it too): the Go,
# Python and TypeScript suites, each setting up what it needs itself — the
# mandate binary built from this checkout (.build/mandate, for the SDKs'
# tests against a real server), a virtualenv under the checkout (.venv) and
# the TypeScript SDK's locked dependencies (npm ci). Every test starts what
# it needs: servers on 127.0.0.1:0, stores in temporary directories.
.PHONY: test test-go test-python test-typescript test-examples example-mcp bench vet mandate-bin python-env typescript-env

GO      ?= go
PYTHON  ?= python3
VENV    := $(CURDIR)/.venv
# Handed to the SDKs' suites only: the Go suite's configuration tests read
# the MANDATE_* environment as the server's own. MCP_EXAMPLE_BIN is the Go
# MCP server of examples/mcp (its `inventory` mode), for the SDKs' interop
# tests.
MANDATE_BIN := $(CURDIR)/.build/mandate
MCP_EXAMPLE_BIN := $(CURDIR)/.build/example-mcp
SDK_ENV := MANDATE_BIN=$(MANDATE_BIN) MCP_EXAMPLE_BIN=$(MCP_EXAMPLE_BIN)

# TypeScript before Python: the Python suite drives the TypeScript MCP server
# with the official Python client, so it needs the TypeScript SDK built.
test: test-go test-typescript test-python test-examples

test-go:
	$(GO) test -race ./...

# The server the SDKs' integration tests start (rebuilt when Go sources change;
# go build is a no-op when nothing did).
mandate-bin:
	$(GO) build -o $(MANDATE_BIN) ./cmd/mandate
	$(GO) build -o $(MCP_EXAMPLE_BIN) ./examples/mcp

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

python-env: $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -e 'sdk/python[test,cedar,mcp]'

test-python: mandate-bin python-env
	cd sdk/python && $(SDK_ENV) $(VENV)/bin/python -m pytest -q

typescript-env:
	cd sdk/typescript && npm ci --no-audit --no-fund --loglevel=error

test-typescript: mandate-bin typescript-env
	cd sdk/typescript && $(SDK_ENV) npm test

# The MCP story (examples/mcp) run end to end by its test, with the Python
# and TypeScript pieces the two targets above set up.
test-examples: mandate-bin python-env typescript-env
	cd sdk/typescript && npm run build --silent
	MANDATE_EXAMPLE_MCP=1 PYTHON=$(VENV)/bin/python $(SDK_ENV) $(GO) test -count=1 -run TestStory ./examples/mcp

# The MCP story, told on the terminal.
example-mcp: mandate-bin python-env typescript-env
	cd sdk/typescript && npm run build --silent
	PYTHON=$(VENV)/bin/python MANDATE_BIN=$(MANDATE_BIN) $(GO) run ./examples/mcp

# Every Go benchmark, 100 iterations: they keep compiling and working (never
# a timed assertion; docs/performance.md has the measured runs).
bench:
	$(GO) test -run '^$$' -bench . -benchtime=100x ./...

vet:
	$(GO) vet ./...
