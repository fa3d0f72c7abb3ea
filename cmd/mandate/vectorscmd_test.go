package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestVectorsVerifyRunsEveryFile: `mandate vectors verify FILE` prints one
// JSON line per case, named as the case, with the verdict the file expects,
// for every committed vector file; an unreadable file exits 2.
func TestVectorsVerifyRunsEveryFile(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/vectors/*.json")
	if len(files) < 4 {
		t.Fatalf("vector files: %v", files)
	}
	for _, f := range files {
		out, err := runCLI(t, "", "vectors", "verify", f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		data, _ := os.ReadFile(f)
		var v struct {
			Covers [][]any `json:"covers"`
			Cases  []struct {
				Name   string `json:"name"`
				Expect string `json:"expect"`
			} `json:"cases"`
		}
		if err := json.Unmarshal(data, &v); err != nil {
			t.Fatal(err)
		}
		var want []map[string]any
		for _, q := range v.Covers {
			want = append(want, map[string]any{"name": q[0].(string) + " ⊇ " + q[1].(string), "verdict": q[2]})
		}
		for _, c := range v.Cases {
			want = append(want, map[string]any{"name": c.Name, "verdict": c.Expect})
		}
		var got []map[string]any
		sc := bufio.NewScanner(strings.NewReader(out))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var line map[string]any
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				t.Fatalf("%s: a line that is not JSON: %q", f, sc.Text())
			}
			got = append(got, line)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: the runner printed\n%s", f, out)
		}
	}
	_, err := runCLI(t, "", "vectors", "verify", "no-such-file.json")
	if code, _ := exitCode(err); err == nil || code != 2 {
		t.Errorf("an unreadable file: %v", err)
	}
}
