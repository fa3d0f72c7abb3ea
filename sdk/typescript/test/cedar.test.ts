// Per-call Cedar decisions with @cedar-policy/cedar-wasm: the same policy
// files and context as the Go verifier (the vectors hold the cross-language
// cases; these cover ids, loading errors, scope patterns and fail-closed).
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CallPolicy, NO_POLICY_PERMITS } from '../dist/cedar.js';
import { PolicyError } from '../dist/index.js';
import { REPO_DIR } from './harness.js';

const call = (scopes: string[], over: Record<string, unknown> = {}) => ({
  holder: 'db-agent',
  groups: [] as string[],
  action: 'call',
  resource: { type: 'Table', id: 'orders' },
  subject: 'orchestrator',
  subjectIssuer: 'https://mandate.example',
  actors: ['db-agent', 'researcher'],
  depth: 2,
  scopes,
  audiences: ['https://orders.example'],
  root: 'root-1',
  lineage: ['root-1', 'child-1'],
  bound: true,
  ...over,
});

describe('CallPolicy (Cedar, per call)', () => {
  it('loads a directory: ids from @id, decisions name the determining policies', async () => {
    const p = await CallPolicy.loadDir(join(REPO_DIR, 'testdata', 'policies', 'api'));
    assert.deepEqual(p.ids(), ['orders-depth-limit', 'orders-read']);
    assert.match(p.position('orders-read') ?? '', /orders\.cedar:\d+$/);
    assert.deepEqual(p.authorizeCall(call(['db:read:*'])), { allow: true, forbidden: false, policies: ['orders-read'], reason: 'permitted by policy "orders-read"' });
    const deep = p.authorizeCall(call(['db:read:*'], { depth: 4 }));
    assert.equal(deep.allow, false);
    assert.equal(deep.forbidden, true);
    assert.deepEqual(deep.policies, ['orders-depth-limit']);
    const none = p.authorizeCall(call(['db:write:orders']));
    assert.deepEqual(none, { allow: false, forbidden: false, policies: [], reason: NO_POLICY_PERMITS });
  });

  it('scope patterns read what a scope grants, as attenuation does', async () => {
    const p = await CallPolicy.parse([
      {
        name: 'p.cedar',
        source: `@id("reads-only") permit (principal, action, resource) when { context.scope_patterns_all.contains("*:read:*") };
@id("no-writes") forbid (principal, action, resource) when { context.scope_patterns.contains("*:write:*") };`,
      },
    ]);
    assert.equal(p.authorizeCall(call(['db:read:orders', 'db:read:*'])).allow, true);
    assert.equal(p.authorizeCall(call(['db:*'])).allow, false, 'db:* also grants writes');
    assert.deepEqual(p.authorizeCall(call(['*'])).policies, ['no-writes']);
    assert.equal(p.authorizeCall(call([])).allow, false, 'no scope: nothing is all reads');
  });

  it('policies without @id are FILE:LINE; groups make the principal a member', async () => {
    const p = await CallPolicy.parse([
      { name: '/x/y/team.cedar', source: `// a comment\n\npermit (principal in Group::"research-agents", action == Action::"call", resource);\n` },
    ]);
    assert.deepEqual(p.ids(), ['team.cedar:3']);
    assert.equal(p.authorizeCall(call(['x'])).allow, false);
    assert.deepEqual(p.authorizeCall(call(['x'], { groups: ['research-agents'] })).policies, ['team.cedar:3']);
  });

  it('any evaluation error denies: an erroring forbid too, naming it', async () => {
    const p = await CallPolicy.parse([
      {
        name: 'e.cedar',
        source: `@id("all") permit (principal, action, resource);
@id("typo") forbid (principal, action, resource) when { context.no_such_attribute == 1 };`,
      },
    ]);
    const d = p.authorizeCall(call(['db:read:*']));
    assert.equal(d.allow, false);
    assert.deepEqual(d.policies, ['typo']);
    assert.match(d.reason, /policy "typo" failed to evaluate/);
  });

  it('refuses what would silently change the rules: parse errors, duplicate ids, empty files and directories', async () => {
    await assert.rejects(CallPolicy.parse([{ name: 'bad.cedar', source: 'permit (principal, action' }]), PolicyError);
    await assert.rejects(
      CallPolicy.parse([{ name: 'd.cedar', source: '@id("a") permit (principal, action, resource);\n@id("a") forbid (principal, action, resource);' }]),
      /already used/,
    );
    await assert.rejects(CallPolicy.parse([{ name: 'empty.cedar', source: '// nothing\n' }]), /holds no policy/);
    const dir = mkdtempSync(join(tmpdir(), 'mandate-cedar-'));
    await assert.rejects(CallPolicy.loadDir(dir), /no \*\.cedar files/);
    writeFileSync(join(dir, 'ok.cedar'), 'permit (principal, action, resource);');
    assert.equal((await CallPolicy.loadDir(dir)).ids().length, 1);
  });
});
