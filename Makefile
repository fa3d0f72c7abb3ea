# The one test command (README, "Two commands"; .ci/run runs it too). Every
# test starts what it needs itself: servers on 127.0.0.1:0, bbolt files in
# temporary directories. Targets for the SDKs and PostgreSQL join `test` as
# they land, so `make test` stays the whole suite.
.PHONY: test test-go bench vet

test: test-go

test-go:
	go test -race ./...

# Every Go benchmark, 100 iterations: they keep compiling and working (never
# a timed assertion; docs/performance.md has the measured runs).
bench:
	go test -run '^$$' -bench . -benchtime=100x ./...

vet:
	go vet ./...
