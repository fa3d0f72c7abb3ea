// Differential tests against the Go reference itself: a small Go program,
// built from this checkout (tokens/jwt, chain, net/url as tokens/dpop.go
// uses it), answers the same generated inputs as this SDK — claims decoded
// and checked (Go's encoding/json quirks included: case-insensitive member
// names, duplicates, null elements), NumericDates, DPoP htu comparison,
// request paths and MCP arguments (policy.ParseArguments: refused or not,
// and the Cedar values). Inputs come from fast-check with a fixed seed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { check } from '../dist/chain.js';
import { VerificationError } from '../dist/errors.js';
import { JSONError } from '../dist/gojson.js';
import { requestPath, sameHTU } from '../dist/gourl.js';
import { numericDateFromText, parseClaimsJSON } from '../dist/jwt.js';
import { ArgumentsError, parseArguments } from '../dist/mcpdecide.js';
import { REPO_DIR } from './harness.js';

const GO_MAIN = `package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	cedar "github.com/cedar-policy/cedar-go"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/policy"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// canon writes a Cedar value in a form both languages can print: L<long>,
// D<decimal as cedar-go prints it>, S<hex of UTF-8>, B<bool>, sets sorted and
// deduplicated, records by sorted key.
func canon(v cedar.Value) string {
	switch x := v.(type) {
	case cedar.Long:
		return fmt.Sprintf("L%d", int64(x))
	case cedar.Decimal:
		return "D" + x.String()
	case cedar.String:
		return "S" + hex.EncodeToString([]byte(string(x)))
	case cedar.Boolean:
		return fmt.Sprintf("B%v", bool(x))
	case cedar.Set:
		seen := map[string]bool{}
		var items []string
		for e := range x.All() {
			c := canon(e)
			if !seen[c] {
				seen[c] = true
				items = append(items, c)
			}
		}
		sort.Strings(items)
		return "[" + strings.Join(items, ",") + "]"
	case cedar.Record:
		var items []string
		for k, e := range x.All() {
			items = append(items, hex.EncodeToString([]byte(string(k)))+":"+canon(e))
		}
		sort.Strings(items)
		return "{" + strings.Join(items, ",") + "}"
	}
	return fmt.Sprintf("?%T", v)
}

// sameHTU is tokens.sameHTU (unexported there).
func sameHTU(htu, target string) bool {
	a, err1 := url.Parse(htu)
	b, err2 := url.Parse(target)
	if err1 != nil || err2 != nil || a.Host == "" {
		return false
	}
	norm := func(u *url.URL) string {
		host := strings.ToLower(u.Host)
		scheme := strings.ToLower(u.Scheme)
		if (scheme == "https" && strings.HasSuffix(host, ":443")) || (scheme == "http" && strings.HasSuffix(host, ":80")) {
			host = host[:strings.LastIndexByte(host, ':')]
		}
		path := u.EscapedPath()
		if path == "" {
			path = "/"
		}
		return scheme + "://" + host + path
	}
	return norm(a) == norm(b)
}

func main() {
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for sc.Scan() {
		var x struct{ Kind, A, B string }
		if err := json.Unmarshal(sc.Bytes(), &x); err != nil {
			panic(err)
		}
		r := ""
		switch x.Kind {
		case "htu":
			r = fmt.Sprint(sameHTU(x.A, x.B))
		case "date":
			var d jwt.NumericDate
			if err := d.UnmarshalJSON([]byte(x.A)); err != nil {
				r = "error"
			} else {
				r = fmt.Sprint(int64(d))
			}
		case "requri":
			if u, err := url.ParseRequestURI(x.A); err != nil {
				r = "error"
			} else {
				r = u.EscapedPath()
			}
		case "args":
			a, err := policy.ParseArguments([]byte(x.A))
			if err != nil {
				r = "invalid"
			} else {
				r = canon(a.Record())
			}
		case "claims":
			c, err := jwt.Parse([]byte(x.A))
			if err != nil {
				r = "malformed"
				break
			}
			_, err = chain.Expect{Issuer: "https://mandate.example", Audiences: []string{"https://api.example"},
				Now: time.Unix(1795770000, 0), Leeway: 5 * time.Second, ExpiryLeeway: 5 * time.Second}.Check(c)
			var ce *chain.ClaimError
			switch {
			case err == nil:
				r = "ok"
			case errors.As(err, &ce) && errors.Is(err, chain.ErrMalformedToken):
				r = "malformed"
			case errors.Is(err, chain.ErrWrongIssuer):
				r = "wrong_issuer"
			case errors.Is(err, chain.ErrWrongAudience):
				r = "wrong_audience"
			case errors.Is(err, chain.ErrNotYetValid):
				r = "not_yet_valid"
			case errors.Is(err, chain.ErrExpired):
				r = "expired"
			default:
				r = "malformed"
			}
		}
		fmt.Fprintln(out, r)
	}
}
`;

interface Input {
  kind: 'htu' | 'date' | 'requri' | 'claims' | 'args';
  a: string;
  b?: string;
}

const pick = <T>(a: readonly T[]): fc.Arbitrary<T> => fc.constantFrom(...a);

const scheme = pick(['http://', 'https://', 'HTTPS://', 'ftp://', '', 'https:', 'https:///', '//']);
const host = pick([
  'api.example', 'API.Example', 'api.example:443', 'api.example:80', 'api.example:', 'api.example:8x', '[::1]', '[::1]:443',
  '[127.0.0.1]', 'a@api.example', 'a:b@api.example', 'api%41.example', 'ap i.example', 'é.example', 'É.EXAMPLE', 'a:1:2', '',
  'x<y', '[fe80::1%25en0]',
]);
const path = fc
  .array(
    pick([
      '/', 'orders', '..', '.', '%2F', '%2f', '%41', 'a b', 'é', '%zz', '%', '?q=1', '#f', '\\', ';x', '~', '*', '!', "'", '(', '[',
      ']', '@', ':', '%20', '+', '&', '=', '$', ',', '"', '<', '`', '{', '^', '|', '\t', '\u007f',
    ]),
    { maxLength: 6 },
  )
  .map((a) => a.join(''));
const url = fc.tuple(scheme, host, path).map(([s, h, p]) => s + h + p);
const vary = (u: string): fc.Arbitrary<string> =>
  fc.array(pick(['upper', 'port', 'pct', 'dot', 'query', 'frag', 'none']), { maxLength: 3 }).map((ops) => {
    let v = u;
    for (const o of ops) {
      if (o === 'upper') v = v.replace(/^[a-z]+:\/\/[^/]*/, (m) => m.toUpperCase());
      if (o === 'port') v = v.replace(/^(https?:\/\/[^/:]*)/, (m) => m + (m.startsWith('https') ? ':443' : ':80'));
      if (o === 'pct') v = v.replace(/[a-z](?=[^/]*$)/, (m) => '%' + m.charCodeAt(0).toString(16).toUpperCase());
      if (o === 'dot') v = v.replace(/\/([^/]*)$/, '/./$1');
      if (o === 'query') v += '?a=b';
      if (o === 'frag') v += '#x';
    }
    return v;
  });

const numText = fc
  .oneof(
    fc.bigInt({ min: -(2n ** 60n), max: 2n ** 60n }).map(String),
    fc.tuple(fc.bigInt({ min: -(2n ** 55n), max: 2n ** 55n }), fc.stringMatching(/^[0-9]{1,20}$/)).map(([a, b]) => `${a}.${b}`),
    fc
      .tuple(fc.stringMatching(/^-?[0-9]{1,3}(\.[0-9]{1,25})?$/), pick(['e', 'E']), pick(['', '+', '-']), fc.integer({ min: 0, max: 30000 }))
      .map(([m, e, s, x]) => `${m}${e}${s}${x}`),
    pick([
      '9007199254740992', '9007199254740993', '-9007199254740993', '9007199254740992.5', '9007199254740991.9999999999', '0.5', '-0.5',
      '-0.0', '0e999999999999999999999', '1e-999999999999999999999', '-1e-30000', '1e400', '0.000001e401',
    ]),
  )
  .filter((s) => /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/.test(s));

const base: Record<string, unknown> = {
  iss: 'https://mandate.example', sub: 'orchestrator', sub_iss: 'https://mandate.example', aud: ['https://api.example'],
  client_id: 'db-agent', scope: 'db:read:orders', iat: 1795769940, nbf: 1795769940, exp: 1795770240, jti: 'grand-1',
  act: { act: { sub: 'researcher' }, sub: 'db-agent' }, lineage: ['root-1', 'child-1'],
};
const names = [...Object.keys(base), 'cnf', 'may_act', 'extra'];
const variant = (k: string): fc.Arbitrary<string> =>
  pick([k, k.toUpperCase(), k[0].toUpperCase() + k.slice(1), k.replace('s', 'ſ'), k.replace('k', 'K'), k.replace('i', 'ı'), k + ' ']);
const value = pick<unknown>([
  null, true, 0, 1.5, '', 'db-agent', 'x', [], [null], ['root-1'], ['https://api.example', null], {}, { sub: 'db-agent' }, { jkt: '' },
  { jkt: 'abc' }, { sub: null }, 'https://api.example', 1795770240, '1795770240', [1], { act: null, sub: 'db-agent' },
  ['root-1', 'child-1', 'x'], [null, null, null],
]);
const mutation = fc
  .tuple(pick(names), fc.boolean(), value)
  .chain(([k, keep, v]) => fc.tuple(keep ? fc.constant(k) : variant(k), fc.constant(v)));
const claimsText = fc.tuple(fc.array(mutation, { maxLength: 4 }), pick(['replace', 'first', 'last'] as const)).map(([muts, mode]) => {
  let entries: Array<[string, unknown]> = Object.entries(base);
  if (mode === 'replace') {
    // Overwrite members in place (no duplicate unless two mutations name the same member).
    for (const [k, v] of muts) {
      const i = entries.findIndex(([n]) => n === k);
      if (i >= 0) entries[i] = [k, v];
      else entries.push([k, v]);
    }
  } else entries = mode === 'first' ? [...muts, ...entries] : [...entries, ...muts];
  return '{' + entries.map(([k, v]) => JSON.stringify(k) + ':' + JSON.stringify(v)).join(',') + '}';
});

// MCP arguments: numbers in every spelling near the bounds, member names that
// fold alike, escapes and surrogates, nesting around 8 levels, damage around
// the object. (No record whose only member is __extn/__entity/__expr: there
// the TypeScript rule refuses what Go decides, see NEEDS.md.)
const argNumber = fc.oneof(
  numText,
  pick([
    '99', '99.0', '9.9e1', '-0', '-0.0e-0', '1e-5', '10.49999', '10.4999', '922337203685477.5807', '922337203685477.5808', '-922337203685477.5807',
    '-922337203685477.5808e0', '0.00001e5', '1234.5678e-2', '123456789012345678901234e-10', '9007199254740993e-1', '90071992547409920e-1',
    '0e99999999999999999999', '1.0000e4', '0.1e-3', '100000000000000000000e-20', '01', '1.', '.5', '+1', '1e', '-',
  ]),
);
const argKey = pick(['a', 'A', 'amount', 'AMOUNT', 'Amount', 's', '\\u017f', 'ſ', 'k', 'K', '\\u212a', '\u212a', 'é', 'É', '__proto__', 'x y', '\\u0061', '', 'q', '\\ud83d\\ude00', '\\ud83d', '😀']);
const argString = pick(['"x"', '"\\ud83d\\ude00"', '"\\ud83d"', '"\\ude00x"', '"\\u00e9"', '"é"', '"\\n"', '"\\\\ud83d"', '"\\u0000"', '"\t"', '"\\x"', '"😀"', '"a\\/b"']);
const argValue: fc.Arbitrary<string> = fc.letrec<{ v: string }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    argNumber,
    argString,
    pick(['true', 'false', 'null', 'tru', 'nul']),
    fc.array(tie('v'), { maxLength: 3 }).map((a) => `[${a.join(',')}]`),
    fc.array(fc.tuple(argKey, tie('v')), { maxLength: 3 }).map((ms) => `{${ms.map(([k, v]) => `"${k}":${v}`).join(',')}}`),
  ),
})).v;
const nested = fc.tuple(fc.integer({ min: 6, max: 10 }), pick(['[', '{"n":']), argValue).map(([n, open, v]) => {
  const close = open === '[' ? ']' : '}';
  return `{"a":${open.repeat(n - 1)}${v}${close.repeat(n - 1)}}`;
});
const argsText = fc.oneof(
  { weight: 6, arbitrary: fc.array(fc.tuple(argKey, argValue), { maxLength: 4 }).map((ms) => `{${ms.map(([k, v]) => `"${k}":${v}`).join(',')}}`) },
  { weight: 2, arbitrary: nested },
  { weight: 1, arbitrary: argValue },
  { weight: 1, arbitrary: fc.tuple(pick(['', ' ', '\n', '\u00a0', '\ufeff', '\u0085']), argValue, pick(['', ' ', ' {}', 'x', ','])).map(([a, v, b]) => a + v + b) },
).filter((t) => !/\{"__(extn|entity|expr)":/.test(t));

function inputs(): Input[] {
  const out: Input[] = [];
  const opts = { seed: 20261203, numRuns: 0 };
  const sample = <T>(a: fc.Arbitrary<T>, n: number): T[] => fc.sample(a, { ...opts, numRuns: n });
  for (const [a, b] of sample(fc.tuple(url, url), 800)) out.push({ kind: 'htu', a, b });
  for (const a of sample(url, 800)) out.push({ kind: 'htu', a, b: 'https://api.example/orders' });
  for (const [a, b] of sample(url.chain((u) => fc.tuple(vary(u), vary(u))), 2000)) out.push({ kind: 'htu', a, b });
  for (const p of sample(path, 1000)) out.push({ kind: 'requri', a: p.startsWith('/') ? p : '/' + p });
  for (const a of sample(numText, 2000)) out.push({ kind: 'date', a });
  for (const a of sample(claimsText, 4000)) out.push({ kind: 'claims', a });
  for (const a of sample(argsText, 4000)) out.push({ kind: 'args', a });
  return out;
}

/** The canonical form of a Cedar JSON value, as the Go helper prints cedar-go's (canon). */
function canon(v: unknown): string {
  const hex = (s: string): string => Buffer.from(s, 'utf8').toString('hex');
  if (typeof v === 'number') return `L${v === 0 ? 0 : v}`;
  if (typeof v === 'boolean') return `B${v}`;
  if (typeof v === 'string') return 'S' + hex(v);
  const byBytes = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));
  if (Array.isArray(v)) return '[' + [...new Set(v.map(canon))].sort(byBytes).join(',') + ']';
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  const e = o.__extn as { arg?: string } | undefined;
  if (keys.length === 1 && e && typeof e.arg === 'string') {
    // cedar-go's Decimal.String: four fractional digits, up to three trailing zeros trimmed
    return 'D' + e.arg.replace(/0{1,3}$/, '');
  }
  return '{' + keys.map((k) => hex(k) + ':' + canon(o[k])).sort(byBytes).join(',') + '}';
}

function ours(x: Input): string {
  switch (x.kind) {
    case 'args':
      try {
        return canon(parseArguments(x.a));
      } catch (e) {
        if (e instanceof ArgumentsError) return 'invalid';
        throw e;
      }
    case 'htu':
      return String(sameHTU(x.a, x.b as string));
    case 'requri':
      return requestPath(x.a) ?? 'error';
    case 'date':
      try {
        return String(numericDateFromText(x.a));
      } catch (e) {
        if (e instanceof JSONError) return 'error';
        throw e;
      }
    case 'claims':
      try {
        check(parseClaimsJSON(x.a), {
          issuer: 'https://mandate.example', audiences: ['https://api.example'], now: 1795770000, leeway: 5, expiryLeeway: 5, maxDepth: 32,
        });
        return 'ok';
      } catch (e) {
        if (e instanceof VerificationError) return e.verdict;
        if (e instanceof JSONError) return 'malformed';
        throw e;
      }
  }
}

describe('differential: the same answers as the Go reference', () => {
  let dir = '';
  let bin = '';
  let skip: string | false = false;

  before(() => {
    const hasGo = spawnSync('go', ['version']).status === 0;
    if (!hasGo) {
      if (process.env.CI) throw new Error('go is required for the differential tests (CI)');
      skip = 'go is not installed: the differential tests against the Go reference are SKIPPED';
      return;
    }
    dir = mkdtempSync(join(tmpdir(), 'mandate-goref-'));
    writeFileSync(
      join(dir, 'go.mod'),
      `module goref\n\ngo 1.24\n\nrequire github.com/mandate-auth/mandate v0.0.0\n\nreplace github.com/mandate-auth/mandate => ${REPO_DIR}\n`,
    );
    copyFileSync(join(REPO_DIR, 'go.sum'), join(dir, 'go.sum'));
    writeFileSync(join(dir, 'main.go'), GO_MAIN);
    bin = join(dir, 'goref');
    const r = spawnSync('go', ['build', '-mod=mod', '-o', bin, '.'], { cwd: dir, encoding: 'utf8', env: { ...process.env, GOFLAGS: '-mod=mod' } });
    assert.equal(r.status, 0, `building the Go reference helper failed: ${r.stderr}`);
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('claims, NumericDates, htu, request paths and MCP arguments', (t) => {
    if (skip) {
      t.skip(skip);
      return;
    }
    const xs = inputs();
    const r = spawnSync(bin, { input: xs.map((x) => JSON.stringify({ Kind: x.kind, A: x.a, B: x.b ?? '' })).join('\n') + '\n', encoding: 'utf8', maxBuffer: 1 << 28 });
    assert.equal(r.status, 0, r.stderr);
    const go = r.stdout.split('\n');
    const wrong: string[] = [];
    const kinds = new Map<string, number>();
    xs.forEach((x, i) => {
      const mine = ours(x);
      const cls = `${x.kind}:${x.kind === 'date' || x.kind === 'requri' ? (go[i] === 'error' ? 'error' : 'value') : x.kind === 'args' ? (go[i] === 'invalid' ? 'invalid' : 'value') : go[i]}`;
      kinds.set(cls, (kinds.get(cls) ?? 0) + 1);
      if (mine !== go[i]) wrong.push(`${JSON.stringify(x)}: go ${go[i]}, ours ${mine}`);
    });
    assert.deepEqual(wrong.slice(0, 20), []);
    // The generators reach both sides of every question.
    for (const k of ['htu:true', 'htu:false', 'date:value', 'date:error', 'requri:value', 'requri:error', 'claims:ok', 'claims:malformed', 'claims:wrong_issuer', 'claims:wrong_audience', 'args:value', 'args:invalid']) {
      assert.ok((kinds.get(k) ?? 0) > 0, `no input reached ${k}`);
    }
  });
});
