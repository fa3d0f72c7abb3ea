package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"unicode/utf8"

	cedar "github.com/cedar-policy/cedar-go"
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
// two members whose names differ only in case (foldKey), a string that is
// not Unicode (invalid UTF-8, a lone surrogate escape),
// more than MaxArgumentsDepth levels or more than MaxArgumentsBytes of JSON
// is ErrArguments: the request is denied rather than decided on a value
// that languages would read differently.
func ParseArguments(raw []byte) (Arguments, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return NoArguments, nil
	}
	if len(raw) > MaxArgumentsBytes {
		return Arguments{}, fmt.Errorf("%w: %d bytes of JSON (at most %d)", ErrArguments, len(raw), MaxArgumentsBytes)
	}
	if !utf8.Valid(raw) {
		return Arguments{}, fmt.Errorf("%w: not UTF-8", ErrArguments)
	}
	if err := loneSurrogate(raw); err != nil {
		return Arguments{}, err
	}
	if raw[0] != '{' {
		return Arguments{}, fmt.Errorf("%w: arguments must be a JSON object", ErrArguments)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := readValue(dec, 1)
	if err != nil {
		return Arguments{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return Arguments{}, fmt.Errorf("%w: data after the arguments object", ErrArguments)
	}
	rec := v.(cedar.Record)
	return Arguments{rec: &rec}, nil
}

// readValue reads one JSON value at nesting level depth (containers count).
func readValue(dec *json.Decoder, depth int) (cedar.Value, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrArguments, err)
	}
	switch t := tok.(type) {
	case json.Delim:
		if depth > MaxArgumentsDepth {
			return nil, fmt.Errorf("%w: nested deeper than %d levels", ErrArguments, MaxArgumentsDepth)
		}
		if t == '{' {
			m := cedar.RecordMap{}
			folded := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("%w: %v", ErrArguments, err)
				}
				key := cedar.String(k.(string))
				if _, dup := m[key]; dup {
					return nil, fmt.Errorf("%w: member %q given twice", ErrArguments, excerpt(string(key)))
				}
				if f := foldKey(string(key)); folded[f] {
					return nil, fmt.Errorf("%w: member %q differs from another only in case", ErrArguments, excerpt(string(key)))
				} else {
					folded[f] = true
				}
				if m[key], err = readValue(dec, depth+1); err != nil {
					return nil, err
				}
			}
			_, err := dec.Token() // }
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrArguments, err)
			}
			return cedar.NewRecord(m), nil
		}
		var items []cedar.Value
		for dec.More() {
			v, err := readValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			items = append(items, v)
		}
		if _, err := dec.Token(); err != nil { // ]
			return nil, fmt.Errorf("%w: %v", ErrArguments, err)
		}
		return cedar.NewSet(items...), nil
	case string:
		return cedar.String(t), nil
	case bool:
		return cedar.Boolean(t), nil
	case json.Number:
		return number(string(t))
	case nil:
		return nil, fmt.Errorf("%w: null has no Cedar value", ErrArguments)
	}
	return nil, fmt.Errorf("%w: unexpected %v", ErrArguments, tok)
}

// number converts a JSON number's text, exactly: an integer within ±2^53
// is a Long; another value with at most four fractional digits within the
// decimal range is a decimal; anything else is refused.
func number(text string) (cedar.Value, error) {
	r, ok := new(big.Rat).SetString(text)
	if !ok {
		return nil, fmt.Errorf("%w: number %s", ErrArguments, excerpt(text))
	}
	abs := new(big.Rat).Abs(r)
	if r.IsInt() && abs.Cmp(maxLong) <= 0 {
		return cedar.Long(r.Num().Int64()), nil
	}
	scaled := new(big.Rat).Mul(r, big.NewRat(10000, 1))
	if !scaled.IsInt() || abs.Cmp(maxDecimal) > 0 {
		return nil, fmt.Errorf("%w: number %s is neither an integer within ±2^53 nor a decimal of at most four fractional digits", ErrArguments, excerpt(text))
	}
	d, err := cedar.NewDecimal(scaled.Num().Int64(), -4)
	if err != nil {
		return nil, fmt.Errorf("%w: number %s: %v", ErrArguments, excerpt(text), err)
	}
	return d, nil
}

// loneSurrogate refuses a \u escape of a UTF-16 surrogate that is not half
// of a pair: encoding/json would read it as U+FFFD, Python and JavaScript
// keep it, and Cedar strings are Unicode.
func loneSurrogate(raw []byte) error {
	inString := false
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == '"':
			inString = !inString
		case c == '\\' && inString && i+1 < len(raw):
			if raw[i+1] != 'u' || i+6 > len(raw) {
				i++ // an escaped character: skip it
				continue
			}
			u := hex4(raw[i+2 : i+6])
			switch {
			case u >= 0xD800 && u <= 0xDBFF:
				if i+12 <= len(raw) && raw[i+6] == '\\' && raw[i+7] == 'u' {
					if l := hex4(raw[i+8 : i+12]); l >= 0xDC00 && l <= 0xDFFF {
						i += 11
						continue
					}
				}
				return fmt.Errorf("%w: a lone surrogate escape in a string", ErrArguments)
			case u >= 0xDC00 && u <= 0xDFFF:
				return fmt.Errorf("%w: a lone surrogate escape in a string", ErrArguments)
			}
			i += 5
		}
	}
	return nil
}

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

// hex4 reads four hex digits (-1 when they are not).
func hex4(b []byte) int {
	n := 0
	for _, c := range b {
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
	return n
}

// excerpt keeps error messages short whatever the input.
func excerpt(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
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
	args := cedar.NewRecord(nil)
	if r.Arguments.rec != nil {
		args = *r.Arguments.rec
	}
	return s.authorizeCall(c, map[cedar.String]cedar.Value{"server": cedar.String(r.Server), "arguments": args})
}
