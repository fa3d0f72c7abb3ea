package policy

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"unicode/utf8"

	cedar "github.com/cedar-policy/cedar-go"

	"github.com/mandate-auth/mandate/tokens/jwt"
)

// The actions of MCP requests (docs/mcp.md): a tools/call, a resources/read
// and a prompts/get name the tool, resource or prompt as the Cedar resource;
// any other decided method is Action::"<method>" on the server.
const (
	ActionToolsCall     Action = "tools/call"
	ActionResourcesRead Action = "resources/read"
	ActionPromptsGet    Action = "prompts/get"
)

// The Cedar entity types of MCP resources.
const (
	EntityTool     = "Tool"
	EntityResource = "Resource"
	EntityPrompt   = "Prompt"
	EntityServer   = "Server"
)

// The bounds of an MCP request's arguments: beyond them the request is
// denied, never decided on part of them.
const (
	// MaxArgumentsBytes bounds the arguments' JSON text.
	MaxArgumentsBytes = 64 << 10
	// MaxArgumentsDepth bounds their nesting: the arguments object is level 1,
	// each object or array inside it one more.
	MaxArgumentsDepth = 8
)

// ErrArguments reports arguments that cannot become a Cedar record by the
// rule every language shares (ParseArguments); the request is denied.
var ErrArguments = errors.New("MCP arguments cannot be decided")

// Arguments are an MCP request's arguments as a Cedar record, the
// context's "arguments".
type Arguments struct{ rec *cedar.Record }

// Record is the arguments as the Cedar record policies read
// (context.arguments).
func (a Arguments) Record() cedar.Record {
	if a.rec == nil {
		return cedar.NewRecord(nil)
	}
	return *a.rec
}

// NoArguments is the empty record: a request without arguments (the zero
// Arguments too).
var NoArguments = Arguments{}

// maxDecimal is the largest magnitude of a Cedar decimal (int64 ten-thousandths).
var maxDecimal = new(big.Rat).SetFrac(big.NewInt(1<<63-1), big.NewInt(10000))

// maxLong is 2^53, the largest integer every language reads exactly.
var maxLong = new(big.Rat).SetInt64(1 << 53)

// ParseArguments converts an MCP request's arguments (a JSON object, or
// empty/null for none) to a Cedar record, by the rule of docs/mcp.md that
// the Python and TypeScript guards share: objects become records, arrays
// sets, strings and booleans themselves; a number that is an integer within
// ±2^53 becomes a Long, another finite number with at most four fractional
// digits a decimal. A null inside, any other number, a member given twice,
// two members whose names differ only in case (foldKey), an object whose
// only member is __entity, __extn or __expr, a string that is
// not Unicode (invalid UTF-8, a lone surrogate escape),
// more than MaxArgumentsDepth levels or more than MaxArgumentsBytes of JSON
// is ErrArguments: the request is denied rather than decided on a value
// that languages would read differently.
func ParseArguments(raw []byte) (Arguments, error) {
	raw = bytes.Trim(raw, jsonSpace) // JSON's own white space (RFC 8259 §2), nothing more
	if len(raw) == 0 || string(raw) == "null" {
		return NoArguments, nil
	}
	if len(raw) > MaxArgumentsBytes {
		return Arguments{}, fmt.Errorf("%w: %d bytes of JSON (at most %d)", ErrArguments, len(raw), MaxArgumentsBytes)
	}
	if !utf8.Valid(raw) {
		return Arguments{}, fmt.Errorf("%w: not UTF-8", ErrArguments)
	}
	if raw[0] != '{' {
		return Arguments{}, fmt.Errorf("%w: arguments must be a JSON object", ErrArguments)
	}
	p := &argParser{b: raw}
	v, err := p.value(1)
	if err != nil {
		return Arguments{}, err
	}
	if p.ws(); p.i != len(p.b) {
		return Arguments{}, fmt.Errorf("%w: data after the arguments object", ErrArguments)
	}
	rec := v.(cedar.Record)
	return Arguments{rec: &rec}, nil
}

// ParseClaims converts a verified assertion's JSON payload to the record
// policies read as context.assertion.claims, by the rule ParseArguments
// applies to MCP arguments (and the same refusals: a null, an inexact
// number, a repeated or case-folded member cannot be decided on).
func ParseClaims(payload []byte) (Arguments, error) {
	a, err := ParseArguments(payload)
	if err != nil {
		return Arguments{}, fmt.Errorf("assertion claims: %w", err)
	}
	return a, nil
}

// jsonSpace is the white space RFC 8259 allows around a JSON value.
const jsonSpace = " \t\n\r"

// argParser reads JSON (RFC 8259) straight into Cedar values: one pass,
// numbers kept as their text until converted exactly, escapes decoded
// with surrogates checked.
type argParser struct {
	b []byte
	i int
}

func (p *argParser) fail(what string) error {
	return fmt.Errorf("%w: %s at byte %d", ErrArguments, what, p.i)
}

func (p *argParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// value reads one JSON value at nesting level depth (containers count).
func (p *argParser) value(depth int) (cedar.Value, error) {
	p.ws()
	if p.i >= len(p.b) {
		return nil, p.fail("unexpected end")
	}
	switch c := p.b[p.i]; {
	case c == '{':
		if depth > MaxArgumentsDepth {
			return nil, fmt.Errorf("%w: nested deeper than %d levels", ErrArguments, MaxArgumentsDepth)
		}
		p.i++
		m := cedar.RecordMap{}
		var folded map[string]bool
		for first := true; ; first = false {
			p.ws()
			if p.i < len(p.b) && p.b[p.i] == '}' && first {
				p.i++
				return cedar.NewRecord(m), nil
			}
			k, err := p.str()
			if err != nil {
				return nil, err
			}
			key := cedar.String(k)
			if _, dup := m[key]; dup {
				return nil, fmt.Errorf("%w: member %q given twice", ErrArguments, jwt.Excerpt(k))
			}
			if folded == nil {
				folded = map[string]bool{}
			}
			if f := foldKey(k); folded[f] {
				return nil, fmt.Errorf("%w: member %q differs from another only in case", ErrArguments, jwt.Excerpt(k))
			} else {
				folded[f] = true
			}
			if p.ws(); p.i >= len(p.b) || p.b[p.i] != ':' {
				return nil, p.fail("expected ':'")
			}
			p.i++
			if m[key], err = p.value(depth + 1); err != nil {
				return nil, err
			}
			p.ws()
			if p.i < len(p.b) && p.b[p.i] == ',' {
				p.i++
				continue
			}
			if p.i < len(p.b) && p.b[p.i] == '}' {
				p.i++
				if len(m) == 1 && cedarEscape(k) {
					return nil, fmt.Errorf("%w: a record whose only member is %q (Cedar's JSON, which the Python and TypeScript guards hand to Cedar, reads it as an escape, not a record)", ErrArguments, k)
				}
				return cedar.NewRecord(m), nil
			}
			return nil, p.fail("expected ',' or '}'")
		}
	case c == '[':
		if depth > MaxArgumentsDepth {
			return nil, fmt.Errorf("%w: nested deeper than %d levels", ErrArguments, MaxArgumentsDepth)
		}
		p.i++
		var items []cedar.Value
		for first := true; ; first = false {
			p.ws()
			if p.i < len(p.b) && p.b[p.i] == ']' && first {
				p.i++
				return cedar.NewSet(items...), nil
			}
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			items = append(items, v)
			p.ws()
			if p.i < len(p.b) && p.b[p.i] == ',' {
				p.i++
				continue
			}
			if p.i < len(p.b) && p.b[p.i] == ']' {
				p.i++
				return cedar.NewSet(items...), nil
			}
			return nil, p.fail("expected ',' or ']'")
		}
	case c == '"':
		s, err := p.str()
		return cedar.String(s), err
	case c == 't' && bytes.HasPrefix(p.b[p.i:], []byte("true")):
		p.i += 4
		return cedar.True, nil
	case c == 'f' && bytes.HasPrefix(p.b[p.i:], []byte("false")):
		p.i += 5
		return cedar.False, nil
	case c == 'n' && bytes.HasPrefix(p.b[p.i:], []byte("null")):
		return nil, fmt.Errorf("%w: null has no Cedar value", ErrArguments)
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	}
	return nil, p.fail("unexpected character")
}

// str reads a JSON string, decoding its escapes; a lone surrogate escape
// is refused (encoding/json would read it as U+FFFD, Python and JavaScript
// keep it, and Cedar strings are Unicode).
func (p *argParser) str() (string, error) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return "", p.fail("expected a string")
	}
	p.i++
	start := p.i
	for p.i < len(p.b) && p.b[p.i] != '"' && p.b[p.i] != '\\' && p.b[p.i] >= 0x20 {
		p.i++
	}
	if p.i < len(p.b) && p.b[p.i] == '"' { // no escapes: the common case
		p.i++
		return string(p.b[start : p.i-1]), nil
	}
	out := append([]byte(nil), p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return string(out), nil
		case c < 0x20:
			return "", p.fail("a control character in a string")
		case c != '\\':
			out = append(out, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.b) {
			break
		}
		e := p.b[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := p.hex4()
			switch {
			case r < 0:
				return "", p.fail("a bad \\u escape")
			case r >= 0xD800 && r <= 0xDBFF:
				if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
					p.i += 2
					if lo := p.hex4(); lo >= 0xDC00 && lo <= 0xDFFF {
						out = utf8.AppendRune(out, 0x10000+(rune(r)-0xD800)<<10+(rune(lo)-0xDC00))
						continue
					}
				}
				return "", fmt.Errorf("%w: a lone surrogate escape in a string", ErrArguments)
			case r >= 0xDC00 && r <= 0xDFFF:
				return "", fmt.Errorf("%w: a lone surrogate escape in a string", ErrArguments)
			}
			out = utf8.AppendRune(out, rune(r))
		default:
			return "", p.fail("a bad escape")
		}
	}
	return "", p.fail("an unterminated string")
}

// hex4 reads four hex digits (-1 when they are not).
func (p *argParser) hex4() int {
	if p.i+4 > len(p.b) {
		return -1
	}
	n := 0
	for _, c := range p.b[p.i : p.i+4] {
		switch {
		case c >= '0' && c <= '9':
			n = n<<4 | int(c-'0')
		case c >= 'a' && c <= 'f':
			n = n<<4 | int(c-'a'+10)
		case c >= 'A' && c <= 'F':
			n = n<<4 | int(c-'A'+10)
		default:
			return -1
		}
	}
	p.i += 4
	return n
}

// number reads a JSON number by its grammar and converts its text.
func (p *argParser) number() (cedar.Value, error) {
	start := p.i
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.b[p.i] == '-' {
		p.i++
	}
	intStart := p.i
	if n := digits(); n == 0 || (n > 1 && p.b[intStart] == '0') {
		return nil, p.fail("a malformed number")
	}
	plain := true
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return nil, p.fail("a malformed number")
		}
		plain = false
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return nil, p.fail("a malformed number")
		}
		plain = false
	}
	text := string(p.b[start:p.i])
	if plain && len(text) <= 16 { // at most 16 digits: exact in an int64, compared with 2^53 below
		n, err := strconv.ParseInt(text, 10, 64)
		if err == nil && n <= 1<<53 && n >= -(1<<53) {
			return cedar.Long(n), nil
		}
	}
	return number(text)
}

// number converts a JSON number's text, exactly: an integer within ±2^53
// is a Long; another value with at most four fractional digits within the
// decimal range is a decimal; anything else is refused.
func number(text string) (cedar.Value, error) {
	r, ok := new(big.Rat).SetString(text)
	if !ok {
		return nil, fmt.Errorf("%w: number %s", ErrArguments, jwt.Excerpt(text))
	}
	abs := new(big.Rat).Abs(r)
	if r.IsInt() && abs.Cmp(maxLong) <= 0 {
		return cedar.Long(r.Num().Int64()), nil
	}
	scaled := new(big.Rat).Mul(r, big.NewRat(10000, 1))
	if !scaled.IsInt() || abs.Cmp(maxDecimal) > 0 {
		return nil, fmt.Errorf("%w: number %s is neither an integer within ±2^53 nor a decimal of at most four fractional digits", ErrArguments, jwt.Excerpt(text))
	}
	d, err := cedar.NewDecimal(scaled.Num().Int64(), -4)
	if err != nil {
		return nil, fmt.Errorf("%w: number %s: %v", ErrArguments, jwt.Excerpt(text), err)
	}
	return d, nil
}

// cedarEscape reports the member names that make a one-member object a
// special value in Cedar's JSON format (an entity, an extension value, an
// expression) rather than a record.
func cedarEscape(k string) bool { return k == "__entity" || k == "__extn" || k == "__expr" }

// foldKey folds a member name the way encoding/json matches one to an
// ASCII field name: ASCII letters in lower case, and the two non-ASCII
// letters that fold onto one (U+017F ſ onto s, U+212A Kelvin sign onto k).
// Two members of one object that fold alike would both fill one field of a
// Go tool's arguments struct (the last one winning), while Cedar saw two
// members, so they are refused.
func foldKey(k string) string {
	b := make([]rune, 0, len(k))
	for _, r := range k {
		switch {
		case r >= 'A' && r <= 'Z':
			r += 'a' - 'A'
		case r == '\u017f':
			r = 's'
		case r == '\u212a':
			r = 'k'
		}
		b = append(b, r)
	}
	return string(b)
}

// MCPRequest is one MCP request as policy decides it (docs/mcp.md): the
// chain's holder calling Method on the server, with Name the tool or
// prompt, or URI the resource, and the request's Arguments.
type MCPRequest struct {
	// Call is the chain and the holder's groups; its Action and Resource are
	// set from Method, Name and URI.
	Call CallRequest
	// Server is the MCP server's canonical URI (the token's audience).
	Server    string
	Method    string
	Name      string
	URI       string
	Arguments Arguments
}

// Target is the Cedar action and resource of an MCP request: Tool::"<name>"
// for tools/call, Resource::"<uri>" for resources/read, Prompt::"<name>"
// for prompts/get, and Server::"<server>" for any other method.
func (r MCPRequest) Target() (Action, Entity) {
	switch Action(r.Method) {
	case ActionToolsCall:
		return ActionToolsCall, Entity{Type: EntityTool, ID: r.Name}
	case ActionResourcesRead:
		return ActionResourcesRead, Entity{Type: EntityResource, ID: r.URI}
	case ActionPromptsGet:
		return ActionPromptsGet, Entity{Type: EntityPrompt, ID: r.Name}
	}
	return Action(r.Method), Entity{Type: EntityServer, ID: r.Server}
}

// RequiredScope is the scope an MCP request needs before policy decides it
// (docs/mcp.md): tools:<name> for a tools/call, resources:read for a
// resources/read, prompts:get for a prompts/get, none ("") for any other
// method.
func (r MCPRequest) RequiredScope() string {
	switch Action(r.Method) {
	case ActionToolsCall:
		return "tools:" + r.Name
	case ActionResourcesRead:
		return "resources:read"
	case ActionPromptsGet:
		return "prompts:get"
	}
	return ""
}

// AuthorizeMCP decides an MCP request: the per-call request of its chain
// (AuthorizeCall) with the action and resource of Target, and the context's
// server and arguments. A nil *Set denies.
func (s *Set) AuthorizeMCP(r MCPRequest) Decision {
	c := r.Call
	c.Action, c.Resource = r.Target()
	return s.authorizeCall(c, map[cedar.String]cedar.Value{"server": cedar.String(r.Server), "arguments": r.Arguments.Record()})
}
