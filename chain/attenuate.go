package chain

// Missing returns the first value of want that is not in allowed, and false when
// want ⊆ allowed. Audiences and resource indicators are matched exactly.
func Missing(allowed, want []string) (string, bool) {
	for _, w := range want {
		if !contains(allowed, w) {
			return w, true
		}
	}
	return "", false
}

// Common returns the values present in both a and b, in a's order, without
// duplicates: the default audience of a child narrowed to its holder.
func Common(a, b []string) []string {
	var out []string
	for _, v := range a {
		if contains(b, v) && !contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// Dedupe returns s without repeated values, keeping first occurrences.
func Dedupe(s []string) []string {
	var out []string
	for _, v := range s {
		if !contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}
