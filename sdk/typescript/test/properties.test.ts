// Property tests (fast-check) of the parsers that see untrusted input: the
// compact JWS, the claims, the NumericDate, the scope grammar, the DPoP
// proof, the Authorization header. On any input they either accept or
// refuse with a typed error — never another exception.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  BadAuthorizationError,
  DPoPKey,
  InvalidDPoPProofError,
  KeySet,
  MandateError,
  NoTokenError,
  RevocationSet,
  ScopeError,
  VerificationError,
  Verifier,
  covers,
  parseAuthorization,
  parseScope,
  verifyDPoP,
} from '../dist/index.js';
import { JSONError, parseJSON } from '../dist/gojson.js';
import { numericDateFromText, parseClaimsJSON } from '../dist/jwt.js';
import { AUDIENCE, ISSUER, claimsAt, signToken, testKey } from './harness.js';

const NOW = 1795770000;
const key = testKey('k1');
const verifier = new Verifier(
  { issuer: ISSUER, audience: AUDIENCE, now: () => NOW * 1000, publicUrl: 'https://api.example' },
  KeySet.fromJWKS({ keys: [key.jwk] }),
  new RevocationSet(['revoked-1']),
);
const RUNS = { numRuns: 400, seed: 20261203 };
const b64 = (s: string): string => Buffer.from(s).toString('base64url');

/** Runs f; passes when it returns or throws one of the allowed error types. */
function typedOnly(f: () => unknown, ...allowed: Array<new (...a: never[]) => Error>): void {
  try {
    f();
  } catch (e) {
    if (allowed.some((A) => e instanceof A)) return;
    throw new Error(`untyped exception: ${e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e)}`);
  }
}

// JSON-ish text: real JSON values, their truncations and splices, noise.
const jsonValue = fc.jsonValue({ maxDepth: 4 });
const jsonish = fc.oneof(
  jsonValue.map((v) => JSON.stringify(v)),
  fc.tuple(jsonValue.map((v) => JSON.stringify(v)), fc.nat()).map(([s, n]) => s.slice(0, n % (s.length + 1))),
  fc.string({ unit: 'binary', maxLength: 64 }),
  fc.constantFrom('{', '}', '[[[[', '{"a":', '"\\ud800"', '"\\u12"', '1e99999', '-', '01', 'nul', '{"exp":1e400}', '[' .repeat(20000)),
);

describe('property: the parsers refuse with typed errors only', () => {
  it('JSON (Go reading): parses or throws JSONError; deep nesting is refused, not a stack overflow', () => {
    fc.assert(fc.property(jsonish, (s) => typedOnly(() => parseJSON(s), JSONError)), RUNS);
    assert.throws(() => parseJSON('['.repeat(10001) + ']'.repeat(10001)), JSONError);
    assert.doesNotThrow(() => parseJSON('['.repeat(10000) + ']'.repeat(10000)));
    // Agrees with JSON.parse on what is JSON (Go and JSON.parse share RFC 8259).
    fc.assert(
      fc.property(jsonish, (s) => {
        let a = true;
        let b = true;
        try {
          JSON.parse(s);
        } catch {
          a = false;
        }
        try {
          parseJSON(s);
        } catch {
          b = false;
        }
        return a === b || s.startsWith('['.repeat(10001));
      }),
      RUNS,
    );
  });

  it('claims: decode or throw JSONError', () => {
    const claims = fc.dictionary(
      fc.constantFrom('iss', 'sub', 'SUB', 'sub_iss', 'aud', 'client_id', 'scope', 'iat', 'nbf', 'exp', 'EXP', 'jti', 'act', 'lineage', 'cnf', 'may_act', 'x'),
      jsonValue,
    );
    fc.assert(fc.property(claims, (c) => typedOnly(() => parseClaimsJSON(JSON.stringify(c)), JSONError)), RUNS);
    fc.assert(fc.property(jsonish, (s) => typedOnly(() => parseClaimsJSON(s), JSONError)), RUNS);
  });

  it('NumericDate: exact, whole seconds within ±2^53, else JSONError', () => {
    const number = fc.oneof(
      fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => JSON.stringify(d)),
      fc.bigInt().map(String),
      fc.tuple(fc.bigInt({ min: -(2n ** 56n), max: 2n ** 56n }), fc.nat({ max: 99999 }), fc.integer({ min: -40, max: 40 })).map(([i, f, e]) => `${i}.${f}e${e}`),
    );
    fc.assert(
      fc.property(number, (s) => {
        let v: number;
        try {
          v = numericDateFromText(s);
        } catch (e) {
          if (!(e instanceof JSONError)) throw e;
          return true;
        }
        assert.ok(Number.isSafeInteger(v) || Math.abs(v) === 2 ** 53, `${s} → ${v}`);
        assert.ok(Math.abs(v) <= 2 ** 53);
        // The floor: v ≤ x < v + 1, checked exactly with BigInt arithmetic.
        const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(s);
        if (m && Math.abs(Number(m[4] ?? 0)) < 400) {
          const digits = BigInt(m[1] + m[2] + (m[3] ?? ''));
          const scale = BigInt(m[4] ?? 0) - BigInt((m[3] ?? '').length);
          const [num, den] = scale >= 0n ? [digits * 10n ** scale, 1n] : [digits, 10n ** -scale];
          assert.ok(BigInt(v) * den <= num && num < (BigInt(v) + 1n) * den, `${s} → ${v}`);
        }
        return true;
      }),
      RUNS,
    );
    assert.throws(() => numericDateFromText('9007199254740993'), JSONError);
    assert.equal(numericDateFromText('9007199254740992'), 2 ** 53);
    assert.equal(numericDateFromText('-0.5'), -1);
    assert.equal(numericDateFromText('1.79577024e9'), 1795770240);
    assert.throws(() => numericDateFromText('1e400'), JSONError);
  });

  it('scope grammar: parses or throws ScopeError; what parses is RFC 6749 §3.3 and round-trips', () => {
    const scopeChar = fc.constantFrom('a', 'b', ':', '*', '-', '\t', ' ', '"', '\\', '\u00e9', '\ua789', '\u0000', '~', '!');
    const scope = fc.oneof(fc.string({ unit: scopeChar, maxLength: 40 }), fc.string({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 20 }));
    fc.assert(
      fc.property(scope, (s) => {
        let out: string[];
        try {
          out = parseScope(s);
        } catch (e) {
          if (e instanceof ScopeError) return true;
          throw e;
        }
        for (const p of out) assert.match(p, /^[\x21\x23-\x5b\x5d-\x7e]{1,256}$/);
        assert.equal(new Set(out).size, out.length);
        if (s !== '') assert.deepEqual(parseScope(out.join(' ')), out);
        return true;
      }),
      RUNS,
    );
    // Coverage is reflexive and "*" covers everything.
    fc.assert(fc.property(fc.string(), (s) => covers(s, s) && covers('*', s)), RUNS);
  });

  it('compact JWS and claims: the verifier throws only VerificationError (with a verdict)', () => {
    const good = signToken(key, claimsAt(NOW));
    const segment = fc.oneof(fc.base64String().map((s) => s.replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_')), fc.string({ maxLength: 30 }), jsonish.map(b64));
    const token = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.tuple(segment, segment, segment).map((p) => p.join('.')),
      fc.tuple(jsonValue, jsonValue).map(([h, p]) => `${b64(JSON.stringify(h))}.${b64(JSON.stringify(p))}.${good.split('.')[2]}`),
      // validly signed headers and payloads of every shape
      fc.tuple(fc.dictionary(fc.constantFrom('alg', 'kid', 'typ', 'crit', 'b64', 'ALG', 'Kid'), jsonValue), fc.dictionary(fc.string({ maxLength: 8 }), jsonValue)).map(([h, p]) =>
        signToken(key, p, h),
      ),
      fc.tuple(fc.dictionary(fc.constantFrom('iss', 'sub', 'sub_iss', 'aud', 'client_id', 'scope', 'iat', 'nbf', 'exp', 'jti', 'act', 'lineage', 'cnf'), jsonValue)).map(([over]) =>
        signToken(key, claimsAt(NOW, over)),
      ),
      fc.nat({ max: good.length - 1 }).chain((i) => fc.string({ minLength: 1, maxLength: 2 }).map((c) => good.slice(0, i) + c + good.slice(i + 1))),
    );
    fc.assert(
      fc.property(token, (t) => {
        try {
          verifier.verifySync(t);
        } catch (e) {
          if (e instanceof VerificationError) {
            assert.ok(e.verdict.length > 0);
            assert.ok(!e.message.includes(t) || t.length < 20, 'an error must not carry the whole token');
            return true;
          }
          throw e;
        }
        return true;
      }),
      RUNS,
    );
  });

  it('DPoP proofs: verifyDPoP throws only InvalidDPoPProofError', () => {
    const k = DPoPKey.generate();
    const good = k.proof('GET', 'https://api.example/orders', { accessToken: 'tok', now: NOW });
    const [h, , s] = good.split('.');
    const proof = fc.oneof(
      fc.string({ maxLength: 100 }),
      fc.tuple(jsonValue, jsonValue).map(([hh, p]) => `${b64(JSON.stringify(hh))}.${b64(JSON.stringify(p))}.${s}`),
      fc.dictionary(fc.constantFrom('jti', 'htm', 'htu', 'iat', 'ath', 'nonce', 'JTI'), jsonValue).map((p) => k.signJWT('dpop+jwt', p)),
      fc.dictionary(fc.constantFrom('typ', 'alg', 'jwk', 'crit'), jsonValue).map((hh) => `${b64(JSON.stringify(hh))}.${good.split('.')[1]}.${s}`),
      fc.dictionary(fc.constantFrom('kty', 'crv', 'x', 'y', 'd', 'n', 'e'), fc.oneof(jsonValue, fc.constantFrom('OKP', 'EC', 'RSA', 'oct', 'Ed25519', 'P-256', 'X25519'))).map(
        (jwk) => `${b64(JSON.stringify({ typ: 'dpop+jwt', alg: 'EdDSA', jwk }))}.${good.split('.')[1]}.${s}`,
      ),
      fc.nat({ max: good.length - 1 }).map((i) => good.slice(0, i) + (good[i] === 'A' ? 'B' : 'A') + good.slice(i + 1)),
      fc.constant(`${h}.${good.split('.')[1]}.${s}`),
    );
    fc.assert(
      fc.property(proof, (p) =>
        typedOnly(() => verifyDPoP(p, { method: 'GET', url: 'https://api.example/orders', accessToken: 'tok', now: NOW }, null), InvalidDPoPProofError),
      ),
      RUNS,
    );
  });

  it('the Authorization header: a scheme and a token, or NoTokenError / BadAuthorizationError', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 40 }), { maxLength: 3 }), (values) => typedOnly(() => parseAuthorization(values), NoTokenError, BadAuthorizationError)),
      RUNS,
    );
  });

  it('every refusal is a MandateError carrying error and error_description', () => {
    for (const t of ['', 'a.b', 'a.b.c', signToken(key, claimsAt(NOW, { exp: NOW - 100 })), signToken(key, claimsAt(NOW, { jti: 'revoked-1' }))]) {
      try {
        verifier.verifySync(t);
        assert.fail('accepted');
      } catch (e) {
        assert.ok(e instanceof MandateError);
        assert.equal(e.error, 'invalid_token');
        assert.ok(e.error_description.length > 0);
      }
    }
  });
});
