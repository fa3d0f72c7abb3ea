package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// addFormatFlag gives cmd the one --format flag every command that prints
// data takes: allowed[0] is the default (the human form), and "json" is
// always among the others. The value is checked before the command runs
// (nothing is sent or read with a format the command cannot print), so
// --format garbage fails with exit status 2 instead of printing text.
func addFormatFlag(cmd *cobra.Command, allowed ...string) *string {
	if len(allowed) == 0 || !slices.Contains(allowed, "json") {
		panic("addFormatFlag: " + cmd.Name() + " must offer json") // a programming error, caught by every test
	}
	v := new(string)
	cmd.Flags().StringVar(v, "format", allowed[0], strings.Join(allowed, ", ")+" (json: the shapes of docs/operators.md)")
	prev := cmd.PreRunE
	cmd.PreRunE = func(cmd *cobra.Command, args []string) error {
		if err := checkFormat(*v, allowed); err != nil {
			return err
		}
		if prev != nil {
			return prev(cmd, args)
		}
		return nil
	}
	return v
}

// checkFormat reports a --format value the command does not print.
func checkFormat(v string, allowed []string) error {
	if !slices.Contains(allowed, v) {
		return fmt.Errorf("--format %q is not one of %s", v, strings.Join(allowed, ", "))
	}
	return nil
}
