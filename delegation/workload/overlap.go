package workload

// A name template seen as a language: its literal text matches itself and
// each {claim} one or more of [A-Za-z0-9._-] (the values Fill accepts; the
// 63-character bound and the not-dots-only rule are left out, so these
// answers may say "can" where Fill never would, never the reverse). The
// configuration's checks at start use it: a generated name must never be a
// registered client, nor inside a client's ephemeral namespace, nor be made
// by two rules with different ceilings.

// elem is one position of a template: a literal byte, or a hole.
type elem struct {
	b    byte
	hole bool
}

// elems reads t as a template ({…} a hole) or, when literal, byte by byte.
func elems(t string, literal bool) []elem {
	var out []elem
	for i := 0; i < len(t); i++ {
		if !literal && t[i] == '{' {
			end := i + 1
			for end < len(t) && t[end] != '}' {
				end++
			}
			out = append(out, elem{hole: true})
			i = end
			continue
		}
		out = append(out, elem{b: t[i]})
	}
	return out
}

func valueByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// state is a position in a template: before elem i, or inside hole i
// having read at least one byte.
type state struct {
	i      int
	inHole bool
}

// closure is s and where it may go without reading: out of a hole.
func closure(s state) []state {
	if s.inHole {
		return []state{s, {s.i + 1, false}}
	}
	return []state{s}
}

// step is what reading from s can be: a literal byte (any false), or any
// value byte (any true), and the state after it.
type step struct {
	b    byte
	any  bool
	next state
}

func steps(e []elem, s state) []step {
	if s.i >= len(e) {
		return nil
	}
	if s.inHole {
		return []step{{any: true, next: s}}
	}
	if e[s.i].hole {
		return []step{{any: true, next: state{s.i, true}}}
	}
	return []step{{b: e[s.i].b, next: state{s.i + 1, false}}}
}

// intersects reports whether some string is in both languages, by a search
// of the pairs of states (at most (2n+1)(2m+1) of them).
func intersects(a, b []elem) bool {
	type pair struct{ x, y state }
	seen := map[pair]bool{}
	queue := []pair{{}}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, x := range closure(p.x) {
			for _, y := range closure(p.y) {
				if x.i == len(a) && y.i == len(b) {
					return true
				}
				for _, sx := range steps(a, x) {
					for _, sy := range steps(b, y) {
						ok := false
						switch {
						case sx.any && sy.any:
							ok = true
						case sx.any:
							ok = valueByte(sy.b)
						case sy.any:
							ok = valueByte(sx.b)
						default:
							ok = sx.b == sy.b
						}
						if n := (pair{sx.next, sy.next}); ok && !seen[n] {
							seen[n] = true
							queue = append(queue, n)
						}
					}
				}
			}
		}
	}
	return false
}

// Overlap reports whether templates a and b could make the same name.
func Overlap(a, b string) bool { return intersects(elems(a, false), elems(b, false)) }

// CanMake reports whether template could make exactly name (name is read
// literally, braces and all).
func CanMake(template, name string) bool {
	return intersects(elems(template, false), elems(name, true))
}

// CanMakeUnder reports whether template could make a name "<prefix>/<x>"
// for some x without a '/' (a client's ephemeral agents' namespace).
func CanMakeUnder(template, prefix string) bool {
	under := append(elems(prefix+"/", true), elem{hole: true})
	return intersects(elems(template, false), under)
}
