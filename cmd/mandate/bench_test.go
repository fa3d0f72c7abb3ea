package main

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestBenchRunsEveryOperation runs the load generator briefly against an
// embedded server for each operation, closed and open loop, and checks it
// reports what it promises (no error, percentiles, RSS, the crypto bound).
func TestBenchRunsEveryOperation(t *testing.T) {
	for _, o := range []benchOptions{
		{op: "mint", concurrency: 4},
		{op: "exchange", depth: 2, concurrency: 4},
		{op: "introspect", concurrency: 4},
		{op: "revoke", rate: 200},
	} {
		o.depth = max(o.depth, 1)
		o.concurrency = max(o.concurrency, 1)
		o.duration, o.alg, o.bcryptCost = 300*time.Millisecond, "EdDSA", bcrypt.MinCost
		var out bytes.Buffer
		if err := runBench(context.Background(), &out, o); err != nil {
			t.Fatalf("%s: %v", o.op, err)
		}
		for _, want := range []string{
			`throughput   [1-9]\d* ok/s`, `latency      p50 \S+  p90 \S+  p99 \S+  max \S+`, `errors       none`,
			`server RSS   \d+\.\d MiB = \d+\.\d MiB anonymous .* \+ \d+\.\d MiB file-backed .* \+ \d+\.\d MiB shared`, `crypto bound EdDSA sign \+ verify \S+ per token`,
		} {
			if !regexp.MustCompile(want).MatchString(out.String()) {
				t.Errorf("%s: output lacks %q:\n%s", o.op, want, out.String())
			}
		}
	}
	if err := runBench(context.Background(), &bytes.Buffer{}, benchOptions{op: "dance", depth: 1, concurrency: 1, duration: time.Second}); err == nil {
		t.Error("an unknown operation ran")
	}
	// --format json: one object, with the figures the text shows.
	var out bytes.Buffer
	o := benchOptions{op: "mint", depth: 1, concurrency: 2, duration: 200 * time.Millisecond, alg: "EdDSA", bcryptCost: bcrypt.MinCost, format: "json"}
	if err := runBench(context.Background(), &out, o); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Op  string `json:"op"`
		OK  int    `json:"ok"`
		RSS struct {
			Total, Anon, File, Shmem int64
			Split                    bool
		} `json:"rss"`
	}
	dec := json.NewDecoder(&out)
	if err := dec.Decode(&rep); err != nil || dec.More() {
		t.Fatalf("not one JSON object: %v\n%s", err, out.String())
	}
	if rep.Op != "mint" || rep.OK == 0 || !rep.RSS.Split || rep.RSS.Anon+rep.RSS.File+rep.RSS.Shmem != rep.RSS.Total {
		t.Errorf("json report: %+v", rep)
	}
}

// fixedReport is a bench report with fixed figures, for the formatters.
func fixedReport() *benchReport {
	return &benchReport{Op: "exchange", Depth: 2, Concurrency: 32, Duration: 10 * time.Second, Warmup: 2 * time.Second,
		Server: "http://127.0.0.1:PORT", Embedded: true, BcryptCost: 10, CPUs: 2, GoVersion: "go1.x",
		Requests: 12040, OK: 12000, Throughput: 1200,
		Latency: &benchLatency{P50: 25 * time.Millisecond, P90: 31*time.Millisecond + 250*time.Microsecond, P99: 48 * time.Millisecond, Max: 120 * time.Millisecond},
		Errors:  map[string]int{"invalid_request": 30, "transport: connection reset by peer": 10},
		// 45.67 + 20.02 + 0.05 MiB = 65.74: rounded one by one, the parts
		// would print 45.7 + 20.0 + 0.1 = 65.8, more than the total.
		RSS:    &benchRSS{Source: "/proc/self/status", Split: true, Anon: 47888466, File: 20992491, Shmem: 52429, Total: 47888466 + 20992491 + 52429},
		Store:  &benchStore{FileBytes: 16 << 20, TokenRecords: 12000, TokenBytesEach: 640.4, AuditRecords: 12000, AuditBytesEach: 538.2},
		Crypto: benchCrypto{Alg: "EdDSA", PerToken: 116900 * time.Nanosecond, PerCore: 8554.3, AllCPUs: 17108.6, RunShare: 1200 / 17108.6},
	}
}

// TestBenchReportFormats: the text and JSON of a report with fixed figures.
func TestBenchReportFormats(t *testing.T) {
	var txt bytes.Buffer
	rep := fixedReport()
	rep.printHeader(&txt)
	rep.printResults(&txt)
	goldenCLI(t, "bench.txt", txt.String(), nil)
	var js bytes.Buffer
	if err := renderJSON(&js, rep); err != nil {
		t.Fatal(err)
	}
	goldenCLI(t, "bench.json", js.String(), nil)
	rep.RSS, rep.RSSUnknown, rep.Store, rep.Latency, rep.Errors = nil, "no process_resident_memory_bytes in /metrics", nil, nil, map[string]int{}
	txt.Reset()
	rep.printResults(&txt)
	if !strings.Contains(txt.String(), "server RSS   unknown (no process_resident_memory_bytes in /metrics)\nerrors") &&
		!strings.Contains(txt.String(), "errors       none") {
		t.Errorf("without figures:\n%s", txt.String())
	}
}

// TestBenchRSSPartsAddUp: the RSS line's parts add up to its total, however
// the bytes round (the line used to print a total read at one moment and
// parts read at another, labelled as if all file pages were the data file).
func TestBenchRSSPartsAddUp(t *testing.T) {
	const mib = 1 << 20
	for _, tt := range []struct {
		anon, file, shmem int64
		want              string
	}{
		{45*mib + 70*mib/100, 20*mib + 2*mib/100, 5 * mib / 100, "65.8 MiB = 45.7 MiB anonymous"},
		{mib * 6 / 100, mib * 6 / 100, mib * 6 / 100, "0.2 MiB = 0.1 MiB anonymous (heap, stacks; the load generator's included) + 0.1 MiB file-backed (the binary and the mapped data file) + 0.0 MiB shared"},
		{10 * mib, 0, 0, "10.0 MiB = 10.0 MiB anonymous"},
		{1, 1, 1, "0.0 MiB = 0.0 MiB anonymous"},
	} {
		m := benchRSS{Source: "test", Split: true, Anon: tt.anon, File: tt.file, Shmem: tt.shmem, Total: tt.anon + tt.file + tt.shmem}
		line := formatRSS(m)
		if !strings.HasPrefix(line, tt.want) {
			t.Errorf("formatRSS(%d, %d, %d) = %q, want prefix %q", tt.anon, tt.file, tt.shmem, line, tt.want)
		}
		nums := regexp.MustCompile(`(\d+)\.(\d) MiB`).FindAllStringSubmatch(line, -1)
		if len(nums) != 4 {
			t.Fatalf("%q: %d figures", line, len(nums))
		}
		tenths := func(m []string) int { a, _ := strconv.Atoi(m[1]); b, _ := strconv.Atoi(m[2]); return a*10 + b }
		if sum := tenths(nums[1]) + tenths(nums[2]) + tenths(nums[3]); sum != tenths(nums[0]) {
			t.Errorf("%q: the parts add up to %d tenths, the total is %d", line, sum, tenths(nums[0]))
		}
	}
	if got := formatRSS(benchRSS{Source: "process_resident_memory_bytes", Total: 30 * mib}); got != "30.0 MiB (process_resident_memory_bytes)" {
		t.Errorf("a total alone: %q", got)
	}
}

// TestParseRSS reads /proc/self/status's figures, and refuses a text whose
// parts do not add up to VmRSS (never printing a split that lies).
func TestParseRSS(t *testing.T) {
	const status = "Name:\tmandate\nVmRSS:\t   68932 kB\nRssAnon:\t   46768 kB\nRssFile:\t   22108 kB\nRssShmem:\t      56 kB\n"
	m, ok := parseRSS(status)
	if !ok || m.Total != 68932*1024 || m.Anon != 46768*1024 || m.File != 22108*1024 || m.Shmem != 56*1024 {
		t.Errorf("parseRSS = %+v, %v", m, ok)
	}
	if _, ok := parseRSS(strings.Replace(status, "68932", "70000", 1)); ok {
		t.Error("parts that do not add up were accepted")
	}
	if _, ok := parseRSS("VmRSS:\t 10 kB\n"); ok {
		t.Error("a status without the parts was accepted")
	}
}
