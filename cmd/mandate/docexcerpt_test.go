package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// excerptBlock is a fenced sh block of the docs that shows a command and
// what it prints: the command's lines (continued with a trailing
// backslash), then its output.
var excerptBlock = regexp.MustCompile("(?s)```sh\n(mandate [^`]*?)```")

// TestDocExcerptsAreRealOutput runs every "mandate ..." block of
// docs/policy.md that shows its output, and compares the output line for
// line, so a doc cannot cite a line number or a wording the product no
// longer prints. (The README's commands are walked by
// TestReadmeWalkThrough.)
func TestDocExcerptsAreRealOutput(t *testing.T) {
	t.Chdir("../..") // the docs name paths from the repository's root
	doc, err := os.ReadFile("docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, m := range excerptBlock.FindAllStringSubmatch(string(doc), -1) {
		lines := strings.Split(strings.TrimSuffix(m[1], "\n"), "\n")
		cmdLine := ""
		i := 0
		for ; i < len(lines); i++ {
			l := strings.TrimSpace(lines[i])
			cont := strings.HasSuffix(l, "\\")
			cmdLine += strings.TrimSuffix(l, "\\") + " "
			if !cont {
				i++
				break
			}
		}
		want := strings.Join(lines[i:], "\n")
		if want == "" {
			continue // a command without its output
		}
		found++
		args := strings.Fields(cmdLine)[1:]
		got, _ := runCLI(t, "", args...) // a denial exits 1: the output is what is compared
		if strings.TrimSpace(got) != strings.TrimSpace(want) {
			t.Errorf("docs/policy.md shows for %q:\n%s\nbut it prints:\n%s", cmdLine, want, got)
		}
	}
	if found == 0 {
		t.Fatal("no excerpt with output found in docs/policy.md")
	}
}
