package jwt_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/tokens/jwt"
)

// TestNumericDate: one reading of a date for every token Mandate reads.
func TestNumericDate(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want jwt.NumericDate
		ok   bool
	}{
		{"1795770000", 1795770000, true},
		{"0", 0, true},
		{"-5", -5, true},
		{"1795770000.9", 1795770000, true}, // fractions read as their whole second
		{"1.7957700009e9", 1795770000, true},
		{"-0.5", -1, true},
		{"null", 0, true}, // absent
		{"9007199254740992", 1 << 53, true},
		{"-9007199254740992", -(1 << 53), true},
		{"9007199254740993", 0, false},
		{"-9007199254740993", 0, false},
		{"9007199254740992.5", 0, false},
		{"1e300", 0, false},
		{"1." + strings.Repeat("0", 90), 1, true}, // a float reads it as 0.999…: found by FuzzNumericDate
		{"17957700" + strings.Repeat("0", 0) + "0.0e1", 1795770000, true},
		{"1e999999999", 0, false},
		{"1e-999999999", 0, true},
		{"-1e-999999999", -1, true},
		{"0.0e999999999", 0, true},
		{"9007199254740992e0", 1 << 53, true},
		{"90071992547409921e-1", 0, false}, // 2^53 + 0.1
		{"-1e-20", -1, true},               // the whole second it falls in
		{"1e400", 0, false},
		{"99999999999999999999", 0, false},
		{`"1795770000"`, 0, false},
		{"true", 0, false},
		{"[1]", 0, false},
		{"{}", 0, false},
	} {
		var d jwt.NumericDate
		err := json.Unmarshal([]byte(tt.in), &d)
		if (err == nil) != tt.ok || (tt.ok && d != tt.want) {
			t.Errorf("%s → %d, %v; want %d ok=%v", tt.in, d, err, tt.want, tt.ok)
		}
	}
	if got := jwt.At(time.Unix(1795770000, 999_000_000)); got != 1795770000 || !got.Time().Equal(time.Unix(1795770000, 0)) {
		t.Errorf("At/Time = %d %v", got, got.Time())
	}
}

// TestClaimsWithAHugeDateAreMalformed: Parse refuses a token whose exp,
// nbf or iat is beyond ±2^53, as every verifier must.
func TestClaimsWithAHugeDateAreMalformed(t *testing.T) {
	for _, claim := range []string{"exp", "nbf", "iat"} {
		for _, v := range []string{"1e16", "-1e16", "18446744073709551616", `"soon"`} {
			_, err := jwt.Parse([]byte(`{"iss":"x","sub":"a","` + claim + `":` + v + `}`))
			if !errors.Is(err, jwt.ErrMalformed) {
				t.Errorf("%s=%s: %v", claim, v, err)
			}
		}
	}
	var r jwt.Registered
	if err := json.Unmarshal([]byte(`{"exp":1e17}`), &r); err == nil {
		t.Error("Registered accepted exp 1e17")
	}
}

// TestClaimsRoundTrip: Mandate writes aud and lineage as arrays, and reads
// back what it wrote.
func TestClaimsRoundTrip(t *testing.T) {
	c := jwt.Claims{Issuer: "https://m.example", Subject: "o", ClientID: "o", IssuedAt: 1, NotBefore: 1, Expiry: 2, ID: "j"}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"aud":[]`) || !strings.Contains(string(b), `"lineage":[]`) || !strings.Contains(string(b), `"exp":2`) {
		t.Errorf("encoded %s", b)
	}
	back, err := jwt.Parse(b)
	if err != nil || back.Expiry != 2 || back.ID != "j" || back.RegisteredClaims().Issuer != "https://m.example" {
		t.Errorf("round trip: %+v %v", back, err)
	}
}

func TestExcerpt(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                   "plain",
		"line\nbreak\x1b[31m":     "line?break?[31m",
		"caf\u00e9":               "caf?",
		strings.Repeat("a", 70):   strings.Repeat("a", 64) + "…",
		"\u202egnp.exe":           "?gnp.exe",
		string([]byte{0xff, 'x'}): "?x",
	} {
		if got := jwt.Excerpt(in); got != want {
			t.Errorf("Excerpt(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzNumericDate: any JSON value either decodes to a date within ±2^53 that
// re-encodes to the same whole second, or is refused; nothing panics.
func FuzzNumericDate(f *testing.F) {
	for _, s := range []string{"0", "1795770000", "1.5", "-1", "9007199254740992", "9007199254740993", "1e308", "NaN", `"x"`, "null", "-0", "1E2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var d jwt.NumericDate
		if err := json.Unmarshal([]byte(in), &d); err != nil {
			return
		}
		if d > jwt.MaxNumericDate || d < -jwt.MaxNumericDate {
			t.Fatalf("%q decoded beyond ±2^53: %d", in, d)
		}
		// d is the floor of the number: d <= f < d+1, within float64's own
		// rounding of f.
		if f, err := strconv.ParseFloat(strings.TrimSpace(in), 64); err == nil {
			tol := math.Max(1, math.Abs(f)) * 0x1p-50
			if float64(d) > f+tol || f >= float64(d)+1+tol {
				t.Fatalf("%q decoded to %d", in, d)
			}
		}
		var again jwt.NumericDate
		if err := json.Unmarshal([]byte(strconv.FormatInt(int64(d), 10)), &again); err != nil || again != d {
			t.Fatalf("%d does not round-trip: %d %v", d, again, err)
		}
	})
}

func TestUnverifiedReadsButRefusesNonTokens(t *testing.T) {
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"jti":"j1","client_id":"a","cnf":{"jkt":"k"}}`))
	c, err := jwt.Unverified("e30." + payload + ".sig")
	if err != nil || c.ID != "j1" || c.ClientID != "a" || c.Cnf.JKT != "k" || c.JKT() != "k" {
		t.Fatalf("%+v %v", c, err)
	}
	for _, bad := range []string{"", "a.b", "x." + payload, "e30.!!.sig", "e30." + base64.RawURLEncoding.EncodeToString([]byte("[1]")) + ".s"} {
		if _, err := jwt.Unverified(bad); !errors.Is(err, jwt.ErrMalformed) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
