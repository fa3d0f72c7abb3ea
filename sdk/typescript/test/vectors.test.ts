// Every vector file under testdata/vectors, through this SDK's runner: each
// case's verdict must be the one the Go reference generated. And the runner
// itself (bin/conformance.js) as a user runs it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runCallDetailed, runFile, runMCPDetailed } from '../dist/conformance.js';
import { SDK_DIR, VECTORS_DIR } from './harness.js';

const files = readdirSync(VECTORS_DIR).filter((f) => f.endsWith('.json')).sort();

describe('shared vectors', () => {
  it('exist (testdata/vectors)', () => {
    assert.ok(files.some((f) => f.startsWith('verify-')), 'no verify-*.json');
    assert.ok(files.includes('scope.json'), 'no scope.json');
    assert.ok(files.some((f) => f.startsWith('call-')), 'no call-*.json');
    assert.ok(files.includes('feed.json'), 'no feed.json');
    assert.ok(files.some((f) => f.startsWith('mcp-')), 'no mcp-*.json');
  });

  for (const f of files) {
    describe(f, () => {
      const data = JSON.parse(readFileSync(join(VECTORS_DIR, f), 'utf8')) as {
        cases?: Array<{ name: string; expect: string }>;
        covers?: Array<[string, string, boolean]>;
      };
      const expected: Array<{ name: string; verdict: string | boolean }> = data.covers
        ? data.covers.map(([p, c, b]) => ({ name: `${p} ⊇ ${c}`, verdict: b }))
        : (data.cases ?? []).map((c) => ({ name: c.name, verdict: c.expect }));
      it(`reaches every verdict (${expected.length} cases)`, async () => {
        const got = await runFile(join(VECTORS_DIR, f));
        assert.equal(got.length, expected.length);
        const wrong = got.filter((g, i) => g.name !== expected[i].name || g.verdict !== expected[i].verdict);
        assert.deepEqual(
          wrong.map((g) => `${g.name}: got ${String(g.verdict)}, want ${String(expected[got.indexOf(g)].verdict)}`),
          [],
        );
      });
      const withPolicies = data as { server?: unknown; policies?: unknown; cases?: Array<{ name: string; expect: string; policies?: string[] | null }> };
      if (withPolicies.policies != null && withPolicies.cases?.every((c) => Array.isArray(c.policies))) {
        // The ids that determined each decision, as Go names them (sorted), and
        // the same decisions whether each is given the whole context or only
        // the attributes the policies read (CallPolicy's default).
        for (const allContext of [false, true]) {
          it(`names the policies of every decision${allContext ? ' (the whole context given)' : ''}`, async () => {
            const detailed = withPolicies.server != null ? runMCPDetailed : runCallDetailed;
            const got = await detailed(data as never, { allContext });
            const cases = withPolicies.cases ?? [];
            const wrong = got
              .map((g, i) => ({ g, c: cases[i] }))
              .filter(({ g, c }) => g.verdict !== c.expect || g.policies.join(',') !== (c.policies ?? []).join(','))
              .map(({ g, c }) => `${c.name}: got ${String(g.verdict)} [${g.policies.join(',')}], want ${c.expect} [${(c.policies ?? []).join(',')}]`);
            assert.deepEqual(wrong, []);
          });
        }
      }
    });
  }

  it('bin/conformance.js prints one JSON line per case and exits 0', () => {
    for (const f of files) {
      const r = spawnSync(process.execPath, [join(SDK_DIR, 'bin', 'conformance.js'), join(VECTORS_DIR, f)], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { name: string; verdict: unknown });
      assert.ok(lines.length > 0);
      for (const l of lines) assert.deepEqual(Object.keys(l), ['name', 'verdict']);
    }
  });

  it('bin/conformance.js exits 2 on a file it cannot read', () => {
    const r = spawnSync(process.execPath, [join(SDK_DIR, 'bin', 'conformance.js'), join(VECTORS_DIR, 'no-such-file.json')], { encoding: 'utf8' });
    assert.equal(r.status, 2);
  });
});
