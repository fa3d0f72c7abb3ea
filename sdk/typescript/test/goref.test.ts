// Differential tests against the Go reference itself: a small Go program,
// built from this checkout (tokens/jwt, chain, net/url as tokens/dpop.go
// uses it), answers the same generated inputs as this SDK — claims decoded
// and checked (Go's encoding/json quirks included: case-insensitive member
// names, duplicates, null elements), NumericDates, DPoP htu comparison and
// request paths. Inputs come from fast-check with a fixed seed.
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
import { REPO_DIR } from './harness.js';

const GO_MAIN = `package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

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
  kind: 'htu' | 'date' | 'requri' | 'claims';
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
  return out;
}

function ours(x: Input): string {
  switch (x.kind) {
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

  it('claims, NumericDates, htu and request paths', (t) => {
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
      kinds.set(`${x.kind}:${x.kind === 'date' || x.kind === 'requri' ? (go[i] === 'error' ? 'error' : 'value') : go[i]}`, (kinds.get(`${x.kind}:${x.kind === 'date' || x.kind === 'requri' ? (go[i] === 'error' ? 'error' : 'value') : go[i]}`) ?? 0) + 1);
      if (mine !== go[i]) wrong.push(`${JSON.stringify(x)}: go ${go[i]}, ours ${mine}`);
    });
    assert.deepEqual(wrong.slice(0, 20), []);
    // The generators reach both sides of every question.
    for (const k of ['htu:true', 'htu:false', 'date:value', 'date:error', 'requri:value', 'requri:error', 'claims:ok', 'claims:malformed', 'claims:wrong_issuer', 'claims:wrong_audience']) {
      assert.ok((kinds.get(k) ?? 0) > 0, `no input reached ${k}`);
    }
  });
});
