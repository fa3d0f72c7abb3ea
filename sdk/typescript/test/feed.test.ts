// The revocation feed's page grammar (testdata/vectors/README.md, "Feed
// files"): the follower reads a page exactly as the Go reference does, and a
// page that breaks the grammar is refused whole with a typed error — nothing
// applied, no key dropped, the cursor kept. A differential property test
// holds the reader to Go itself: generated page bodies are played through
// `$MANDATE_BIN vectors verify` (a feed file) and through this SDK, and every
// verdict must be Go's.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { Feed, ProtocolError } from '../dist/index.js';
import { run } from '../dist/conformance.js';
import { readFeedPage } from '../dist/revocation.js';
import { mandateBin } from './harness.js';

const T = 1795770000; // the clock of the pages below (Unix seconds)
const EXP = T + 3600;

/** Whether readFeedPage accepts body; any refusal must be a ProtocolError. */
function accepts(body: string): boolean {
  try {
    readFeedPage(body);
    return true;
  } catch (e) {
    if (e instanceof ProtocolError) return false;
    throw new Error(`untyped exception on ${JSON.stringify(body).slice(0, 200)}: ${e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e)}`);
  }
}

/** A Feed polling a fake fetch that answers the given pages in order, recording what it asked and was told. */
function scripted(pages: Array<{ status: number; body: string }>): { feed: Feed; asked: string[]; dropped: string[][] } {
  const asked: string[] = [];
  const dropped: string[][] = [];
  let next = 0;
  const feed = new Feed(
    {
      url: 'http://feed.test/revocations/feed',
      clientId: 'rs',
      clientSecret: 's',
      fetch: async (input) => {
        asked.push(new URL(String(input)).searchParams.get('since') ?? '');
        const p = pages[next++] ?? { status: 500, body: 'no page scripted' };
        return new Response(p.status === 204 ? null : p.body, { status: p.status, headers: { 'content-type': 'application/json' } });
      },
      nowMs: () => T * 1000,
      leewaySeconds: 5,
      maxStalenessMs: 30000,
      waitMs: 15000,
      retryMaxMs: 5000,
      onRevokedKeys: (kids) => dropped.push(kids),
    },
    'Basic cnM6cw==',
  );
  return { feed, asked, dropped };
}

describe('feed pages: the shared grammar', () => {
  it('reads what the grammar allows', () => {
    assert.deepEqual(readFeedPage(`{"cursor":"c1"}`), { cursor: 'c1', revocations: [], more: false, reset: false, revoked_keys: [] });
    assert.deepEqual(
      readFeedPage(`{"cursor":"c9","CURSOR":"x","more":null,"reset":true,"revocations":[{"jti":"a","exp":9007199254740992},{"jti":"b","exp":1795773600.75,"x":1},` +
        `{"jti":"c","exp":-0.5}],"revoked_keys":["k1"],"cursor":"c2","v":[1e400]}`),
      {
        cursor: 'c2', more: false, reset: true, revoked_keys: ['k1'],
        revocations: [{ jti: 'a', exp: 2 ** 53 }, { jti: 'b', exp: 1795773600 }, { jti: 'c', exp: -1 }],
      },
    );
    // revoked_keys: null is none; a null element refuses the page (the grammar: an array of strings).
    assert.deepEqual(readFeedPage(`{"cursor":"c","revoked_keys":null}`).revoked_keys, []);
    assert.throws(() => readFeedPage(`{"cursor":"c","revoked_keys":["k",null]}`), ProtocolError);
    // A member given twice counts by its last value, even after a bad one.
    assert.equal(readFeedPage(`{"cursor":"c","more":"yes","more":true}`).more, true);
  });

  it('refuses whole what breaks it, with a ProtocolError', () => {
    for (const body of [
      '', 'null', '[]', '"c"', `{"cursor":""}`, `{"CURSOR":"c"}`, `{"cursor":null}`, `{"cursor":"c"} {}`, `{"cursor":"c"}x`,
      `{"cursor":"c","more":"yes"}`, `{"cursor":"c","more":1}`, `{"cursor":"c","reset":"true"}`,
      `{"cursor":"c","revoked_keys":["k",1]}`, `{"cursor":"c","revoked_keys":"k"}`,
      `{"cursor":"c","revocations":{}}`, `{"cursor":"c","revocations":[null]}`, `{"cursor":"c","revocations":["a"]}`,
      `{"cursor":"c","revocations":[{"jti":"a"}]}`, `{"cursor":"c","revocations":[{"jti":"a","exp":0}]}`,
      `{"cursor":"c","revocations":[{"jti":"a","exp":null}]}`, `{"cursor":"c","revocations":[{"jti":"a","exp":0.5}]}`,
      `{"cursor":"c","revocations":[{"jti":"a","exp":"1795773600"}]}`, `{"cursor":"c","revocations":[{"jti":"a","exp":9007199254740993}]}`,
      `{"cursor":"c","revocations":[{"jti":"a","exp":9007199254740992.5}]}`, `{"cursor":"c","revocations":[{"jti":"a","exp":1e400}]}`,
      `{"cursor":"c","revocations":[{"JTI":"a","exp":1795773600}]}`, `{"cursor":"c","revocations":[{"jti":"","exp":1795773600}]}`,
      `{"cursor":"c","x":${'['.repeat(10000)}${']'.repeat(10000)}}`, // deeper than Go's 10,000 (JSON.parse would take it)
    ]) {
      assert.throws(() => readFeedPage(body), ProtocolError, body.slice(0, 80));
    }
    assert.doesNotThrow(() => readFeedPage(`{"cursor":"c","x":${'['.repeat(9999)}${']'.repeat(9999)}}`));
  });

  it('long numbers: the verdicts of Go, in time linear in their length', () => {
    const z = (n: number): string => '0'.repeat(n);
    // What `mandate vectors verify` answered for each as a page's exp (too slow for Go to run here: seconds each).
    // Go's big.Rat.SetString refuses a decimal exponent beyond ±10^6 (less the fraction's digits); an exponent
    // below -20000 reads as 0 or -1 whatever the mantissa.
    const goVerdicts: Array<[string, number | 'refused']> = [
      [`1.${z(999999)}1`, 1], [`1.${z(1000000)}1`, 'refused'], [`0.${z(999999)}5`, 'refused'], [`-0.${z(1000000)}1e2`, -1],
      [`1.${z(1000000)}1e1`, 10], [`5${z(2000000)}e-1000000`, 'refused'], [`-5${z(30000)}e-20001`, -1], [`1${z(1000000)}.5`, 'refused'],
    ];
    const started = performance.now();
    for (const [num, want] of goVerdicts) {
      const body = `{"cursor":"c","revocations":[{"jti":"a","exp":${num}}]}`;
      if (want === 'refused') assert.throws(() => readFeedPage(body), ProtocolError, num.slice(0, 12));
      else assert.equal(readFeedPage(body).revocations[0].exp, want, num.slice(0, 12));
    }
    const huge = `{"cursor":"c","revocations":[{"jti":"a","exp":1.${z(15 << 20)}1}]}`; // a 15 MiB fraction
    assert.throws(() => readFeedPage(huge), ProtocolError);
    assert.ok(performance.now() - started < 5000, `took ${performance.now() - started} ms`);
  });

  it('a refused page applies nothing: no revocation, no key dropped, the cursor kept', async () => {
    const { feed, asked, dropped } = scripted([
      { status: 200, body: `{"cursor":"c1","revocations":[{"jti":"a","exp":${EXP}}]}` },
      { status: 200, body: `{"cursor":"c2","more":"yes","revocations":[{"jti":"b","exp":${EXP}}],"revoked_keys":["k9"]}` },
      { status: 200, body: `{"cursor":"c2","revocations":[{"jti":"b","exp":${EXP}},{"jti":"x"}],"revoked_keys":["k9"]}` },
      { status: 200, body: `{"cursor":"c2","revocations":[{"jti":"b","exp":${EXP}}],"revoked_keys":["k9",7]}` },
      { status: 204, body: '' },
      { status: 200, body: `{"cursor":"c2"}` },
    ]);
    await feed.sync();
    for (let i = 0; i < 4; i++) {
      await assert.rejects(feed.sync(), (e: unknown) => e instanceof ProtocolError);
    }
    assert.deepEqual(asked, ['', 'c1', 'c1', 'c1', 'c1']);
    assert.deepEqual(dropped, []);
    assert.equal(feed.firstRevoked(['b', 'a']), 'a');
    assert.equal(feed.size, 1);
    await feed.sync();
    assert.deepEqual(asked.at(-1), 'c1');
  });

  it('any status but 200 fails the poll (a 204 is not a page)', async () => {
    for (const status of [204, 202, 301, 500]) {
      const { feed } = scripted([{ status, body: `{"cursor":"c1"}` }]);
      await assert.rejects(feed.sync(), (e: unknown) => e instanceof ProtocolError && e.status === status);
      assert.equal(feed.lastSyncedAt(), null);
    }
  });

  it('property: on any text the reader accepts or throws ProtocolError, never another exception', () => {
    const text = fc.oneof(
      fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
      pageBody,
      fc.tuple(pageBody, fc.nat()).map(([s, n]) => s.slice(0, n % (s.length + 1))),
      fc.string({ unit: 'binary', maxLength: 64 }),
    );
    fc.assert(fc.property(text, (s) => void accepts(s)), { numRuns: 1000, seed: 20261203 });
  });
});

// ---- generated page bodies (JSON text written by hand: numbers keep their text) ----

const pick = <T>(a: readonly T[]): fc.Arbitrary<T> => fc.constantFrom(...a);
const ws = pick(['', '', '', ' ', '\n', '\t', '\r\n ']);
const anyJSON = fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v));
const numText = fc.oneof(
  pick([
    String(EXP), `${EXP}.75`, '1.7957736E9', '17957736e2', '0', '-0', '0.0', '0e5', '0.5', '-0.5', '-1', '1', '9007199254740992',
    '9007199254740993', '-9007199254740992', '-9007199254740993', '9007199254740992.5', '9007199254740991.999', '-9007199254740992.5',
    '1e400', '1e-400', '-1e-400', '0.000001e401', '90071992547409920e-1', '9.007199254740993e15',
  ]),
  fc.bigInt({ min: -(2n ** 53n), max: 2n ** 53n }).map(String),
  fc.tuple(fc.boolean(), fc.bigInt({ min: -3n, max: 3n })).map(([neg, d]) => `${neg ? '-' : ''}${2n ** 53n + d}`),
  fc.tuple(fc.integer({ min: -99, max: 99 }), fc.stringMatching(/^[0-9]{1,3}$/), pick(['e', 'E']), pick(['', '+', '-']), fc.integer({ min: 0, max: 20 }))
    .map(([m, f, e, s, x]) => `${m}.${f}${e}${s}${x}`),
);
/** Mostly a value the grammar allows, sometimes one it does not. */
const mostly = (ok: fc.Arbitrary<string>, bad: fc.Arbitrary<string>, weight = 4): fc.Arbitrary<string> =>
  fc.oneof({ weight, arbitrary: ok }, { weight: 1, arbitrary: bad });
const expText = mostly(
  fc.oneof(pick([String(EXP), `${EXP}.75`, '1.7957736E9', '17957736e2', '9007199254740992', '-1', `${EXP}e0`]), numText),
  pick(['null', `"${EXP}"`, 'true', '{}', '[]', `[${EXP}]`]),
);
const jtiText = mostly(pick(['"a"', '"b"', '"c"', '"\\u0062"', '"ſ"', '"a b"']), pick(['""', 'null', '7', 'true', '{}', '["a"]']), 6);
const member = (key: fc.Arbitrary<string>, value: fc.Arbitrary<string>): fc.Arbitrary<string> =>
  fc.tuple(key, ws, value, ws).map(([k, w1, v, w2]) => `${k}${w1}:${v}${w2}`);
const object = (members: fc.Arbitrary<string[]>): fc.Arbitrary<string> =>
  fc.tuple(members, ws).map(([ms, w]) => `{${w}${ms.join(',')}}`);

const entryKey = mostly(pick(['"reason"', '"x"', '"Exp"']), pick(['"jti"', '"exp"', '"JTI"', '"EXP"', '"jti "', '"e\\u0078p"']), 2);
const entry = fc.oneof(
  {
    weight: 12,
    arbitrary: fc
      .tuple(member(pick(['"jti"']), jtiText), member(pick(['"exp"']), expText), fc.array(member(entryKey, fc.oneof(jtiText, expText)), { maxLength: 1 }), fc.boolean())
      .map(([j, e, extra, jFirst]) => (jFirst ? [j, e, ...extra] : [...extra, e, j]))
      .chain((ms) => object(fc.constant(ms))),
  },
  { weight: 1, arbitrary: object(fc.array(member(entryKey, fc.oneof(jtiText, expText)), { maxLength: 3 })) },
  { weight: 1, arbitrary: pick(['null', '"b"', '1', '[]']) },
);
const revocations = mostly(fc.array(entry, { maxLength: 3 }).map((a) => `[${a.join(',')}]`), pick(['null', '[]', '{}', '"b"', '[null]', '["b"]']));
const pageMember = fc.oneof(
  member(mostly(pick(['"cursor"']), pick(['"CURSOR"', '"Cursor"', '"\\u0063ursor"', '"cursor "']), 2), mostly(pick(['"c2"', '"ſ"', '"c 2+&;=%"', '"\\u00e9"']), pick(['""', 'null', '5', 'true', '["c2"]', '{}']), 2)),
  member(pick(['"more"', '"MORE"', '"reset"', '"Reset"', '"more"', '"reset"']), mostly(pick(['true', 'false', 'null']), pick(['"true"', '"false"', '"yes"', '0', '1', '[]', '{}']), 2)),
  member(mostly(pick(['"revocations"']), pick(['"Revocations"']), 2), revocations),
  member(
    mostly(pick(['"revoked_keys"']), pick(['"REVOKED_KEYS"']), 2),
    mostly(pick(['null', '[]', '["k1"]', '["k1","k2"]', '[null]', '["k1",null]', '[""]']), pick(['"k1"', '[1]', '[["k1"]]', '{}', '[true]']), 2),
  ),
  member(pick(['"x"', '"v"', '"extra"']), mostly(anyJSON, pick(['[1e400]', '-0.0e-0', '['.repeat(9999) + ']'.repeat(9999), '['.repeat(10000) + ']'.repeat(10000)]), 8)),
);
const goodCursor = member(pick(['"cursor"']), pick(['"c2"']));
const where = pick(['first', 'last', 'without'] as const);
const place = (c: string, ms: string[], w: 'first' | 'last' | 'without'): string[] => (w === 'first' ? [c, ...ms] : w === 'last' ? [...ms, c] : ms);
const page = fc.oneof(
  // Near the grammar: a cursor, revocations, and maybe one member more.
  {
    weight: 3,
    arbitrary: fc
      .tuple(goodCursor, member(pick(['"revocations"']), fc.array(entry, { minLength: 1, maxLength: 3 }).map((a) => `[${a.join(',')}]`)), fc.array(pageMember, { maxLength: 1 }), fc.boolean())
      .chain(([c, r, ms, cFirst]) => object(fc.constant(cFirst ? [c, r, ...ms] : [r, ...ms, c]))),
  },
  // The flags and the keys, revocations or not.
  {
    weight: 1,
    arbitrary: fc
      .tuple(goodCursor, fc.array(member(pick(['"more"', '"reset"', '"revoked_keys"']), pick(['true', 'false', 'null', '["k1"]', '["k2",null]', '[]'])), { maxLength: 3 }))
      .chain(([c, ms]) => object(fc.constant([c, ...ms]))),
  },
  // Any of the page's members, the cursor first, last or missing.
  { weight: 2, arbitrary: fc.tuple(fc.array(pageMember, { maxLength: 4 }), where).chain(([ms, w]) => object(goodCursor.map((c) => place(c, ms, w)))) },
);
/** A page body: mostly objects near the grammar's edges, then whole-body damage and other JSON. */
const pageBody: fc.Arbitrary<string> = fc.oneof(
  { weight: 12, arbitrary: page },
  { weight: 2, arbitrary: fc.tuple(page, pick([' ', '\n', ' {}', 'x', ',', '\u00a0', '\f', '\u0000', ']'])).map(([p, tail]) => p + tail) },
  { weight: 1, arbitrary: fc.tuple(pick([' ', '\ufeff', '\u00a0', '\t\n']), page).map(([lead, p]) => lead + p) },
  { weight: 1, arbitrary: fc.tuple(page, fc.nat()).map(([p, n]) => p.slice(0, n % (p.length + 1))) },
  { weight: 1, arbitrary: pick(['null', '[]', '"c2"', '1', '', ' ', '{', '{"cursor":"c2"}}', '{"cursor":"c2",}', 'nul', '[{"cursor":"c2"}]', '{"cursor":"c2" "more":true}']) },
  { weight: 1, arbitrary: fc.dictionary(pick(['cursor', 'more', 'reset', 'revocations', 'revoked_keys', 'x']), fc.jsonValue({ maxDepth: 2 })).map((d) => JSON.stringify(d)) },
);

describe('differential: feed pages read as the Go reference reads them', () => {
  let dir = '';
  let bin = '';
  let skip: string | false = false;

  before(() => {
    try {
      bin = mandateBin();
    } catch (e) {
      if (process.env.CI) throw e;
      skip = `no mandate binary (set MANDATE_BIN, or install go): the feed differential test is SKIPPED (${e instanceof Error ? e.message : String(e)})`;
    }
    dir = mkdtempSync(join(tmpdir(), 'mandate-feed-'));
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('generated page bodies: the same verdicts as `mandate vectors verify`, in-process and through the runner', async (t) => {
    if (skip) {
      t.skip(skip);
      return;
    }
    const z = (n: number): string => '0'.repeat(n);
    const longNumbers = [`-5${z(30000)}e-20001`, `5${z(30000)}e-20001`, `1${z(20000)}.5`, `0.${z(20000)}1e20005`, `0.${z(300)}1e305`, `1.${z(30000)}1`, `${EXP}.${z(30000)}1`];
    const bodies = [
      ...fc.sample(pageBody, { seed: 20261203, numRuns: 400 }),
      ...longNumbers.map((n) => `{"cursor":"c2","revocations":[{"jti":"a","exp":${n}}]}`),
    ];
    // Each case: the page as a first sync, a check of jtis it may carry, then a sync that only a follower
    // whose cursor stayed "" (the page refused) passes without wrong_since.
    const file = {
      leeway_seconds: 5,
      max_staleness_seconds: 30,
      cases: bodies.map((body, i) => ({
        name: `page ${i}`,
        steps: [
          { at: T, sync: [{ since: '', status: 200, body }] },
          { at: T, check: ['a', 'b', 'c', 'ſ', 'a b', ''] },
          { at: T + 1, sync: [{ since: '', status: 200, body: '{"cursor":"z"}' }] },
        ],
        expect: '',
      })),
    };
    const path = join(dir, 'feed-generated.json');
    writeFileSync(path, JSON.stringify(file));
    const r = spawnSync(bin, ['vectors', 'verify', path], { encoding: 'utf8', maxBuffer: 1 << 26 });
    assert.equal(r.status, 0, r.stderr);
    const go = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { name: string; verdict: string });
    assert.equal(go.length, bodies.length);

    // In-process: the reader accepts exactly the pages Go's follower synced (or paged on from: more).
    const wrong: string[] = [];
    let accepted = 0;
    bodies.forEach((body, i) => {
      const first = go[i].verdict.split('; ')[0];
      const goAccepts = first.startsWith('synced') || first.startsWith('extra_poll');
      assert.ok(goAccepts || first.startsWith('failed'), `unexpected Go outcome ${first}`);
      if (goAccepts) accepted++;
      if (accepts(body) !== goAccepts) wrong.push(`${JSON.stringify(body).slice(0, 300)}: Go ${goAccepts ? 'accepts' : 'refuses'}`);
    });
    assert.deepEqual(wrong.slice(0, 10), []);

    // Through the runner (a Feed polling real HTTP): the whole verdict, dropped keys and revocations included.
    const ours = await run(JSON.stringify(file));
    const differ = ours
      .map((o, i) => (o.verdict === go[i].verdict ? '' : `${JSON.stringify(bodies[i]).slice(0, 300)}: Go "${go[i].verdict}", ours "${String(o.verdict)}"`))
      .filter(Boolean);
    assert.deepEqual(differ.slice(0, 10), []);

    // The generator reaches both sides and what follows an accepted page.
    const verdicts = go.map((g) => g.verdict);
    assert.ok(accepted >= 60 && bodies.length - accepted >= 60, `accepted ${accepted} of ${bodies.length}`);
    for (const want of ['dropped:', 'revoked:a', 'extra_poll', '; wrong_since']) {
      assert.ok(verdicts.some((v) => v.includes(want)), `no generated page reached "${want}"`);
    }
  });
});
