// The MCP arguments rule and the strict JSON-RPC reader, beyond the shared
// vectors: the edges of the number conversion, what Cedar's JSON would read
// as an escape, and properties — the message reader reads what JSON.parse
// reads or refuses (never another exception), the arguments parser agrees
// with JSON.parse on everything it accepts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  ArgumentsError,
  MessageError,
  decideMCP,
  parseArguments,
  readMessage,
  requiredScope,
} from '../dist/mcpdecide.js';
import { CallPolicy } from '../dist/cedar.js';

const RUNS = { numRuns: 500, seed: 20261203 };

function refused(text: string): boolean {
  try {
    parseArguments(text);
    return false;
  } catch (e) {
    assert.ok(e instanceof ArgumentsError, `not an ArgumentsError: ${String(e)}`);
    return true;
  }
}

describe('parseArguments', () => {
  it('converts numbers exactly from their text', () => {
    const dec = (arg: string) => ({ __extn: { fn: 'decimal', arg } });
    const cases: Array<[string, unknown]> = [
      ['99', 99],
      ['99.0', 99],
      ['9.9e1', 99],
      ['990e-1', 99],
      ['-0', 0],
      ['-0.0e-7', 0],
      ['0e1000001', 0],
      ['9007199254740992', 2 ** 53],
      ['-9007199254740992', -(2 ** 53)],
      ['0.5', dec('0.5000')],
      ['-0.5', dec('-0.5000')],
      ['10.4999', dec('10.4999')],
      ['1.25e1', dec('12.5000')],
      ['922337203685477.5807', dec('922337203685477.5807')],
      ['-922337203685477.5807', dec('-922337203685477.5807')],
      ['0.' + '0'.repeat(3000) + '1e3002', 10],
    ];
    for (const [n, want] of cases) {
      assert.deepEqual(JSON.parse(JSON.stringify(parseArguments(`{"n":${n}}`).n)), want, n);
    }
    for (const n of ['9007199254740993', '-9007199254740993', '1e16', '10.49999', '1e-5', '922337203685477.5808', '0e99999999999999999999', '1e9223372036854775808', '1.5e-1000001']) {
      assert.ok(refused(`{"n":${n}}`), n);
    }
  });

  it('refuses what languages would read apart', () => {
    for (const t of [
      '{"a":null}',
      '{"a":1,"a":1}',
      '{"a":1,"A":1}',
      '{"s":1,"\u017f":1}',
      '{"k":1,"\u212a":1}',
      '{"a":"\\ud800"}',
      '{"a":"\\udc00x"}',
      '{"a":"\ud800"}',
      '{"\ud800":1}',
      '[1]',
      '"x"',
      '{} {}',
      '{"a":[[[[[[[[1]]]]]]]]}',
      `{"q":"${'x'.repeat(65529)}"}`,
      '{"a":01}',
      '{"a":1.}',
      '{"a":.5}',
      '{"a":+1}',
      '{"a":"\t"}',
      '{"a":"\\x"}',
      '{"a":1,}',
      '{,}',
    ]) {
      assert.ok(refused(t), t.slice(0, 60));
    }
    // The edges that pass.
    assert.ok(!refused(`{"q":"${'x'.repeat(65528)}"}`));
    assert.ok(!refused(`  {"q":"${'x'.repeat(65528)}"}\n\t\r `)); // JSON's white space around the value is trimmed before counting
    // Only JSON's white space (space, tab, LF, CR) is trimmed: not what Go's unicode.IsSpace or JS's trim() also call space.
    for (const t of ['{}\u00a0', '\u0085{}', '{}\v', '\f{}', '\u2028{}', '{}\u3000', '\ufeff{}', '\u00a0null', ' \u00a0']) {
      assert.ok(refused(t), JSON.stringify(t));
    }
    assert.ok(!refused('{"a":[[[[[[[1]]]]]]]}'));
    assert.ok(!refused('{"\u00e9":1,"\u00c9":2}'));
    assert.ok(!refused('{"a":"\\ud83d\\ude00 \ud83d\ude00"}'));
    assert.deepEqual(Object.keys(parseArguments('')), []);
    assert.deepEqual(Object.keys(parseArguments(' null ')), []);
    assert.deepEqual(Object.keys(parseArguments(undefined)), []);
  });

  it("quotes the request's text in a refusal as Go does (jwt.Excerpt): no control or non-ASCII character, at most 64 bytes", () => {
    const why = (t: string): string => {
      try {
        parseArguments(t);
      } catch (e) {
        assert.ok(e instanceof ArgumentsError);
        return e.error_description;
      }
      return assert.fail(`accepted ${t}`);
    };
    assert.equal(why('{"a\\n\\u001b[31mé":1,"a\\n\\u001b[31mé":2}'), 'MCP arguments cannot be decided: member "a??[31m?" given twice');
    assert.equal(why('{"Ab\\r":1,"aB\\r":2}'), 'MCP arguments cannot be decided: member "aB?" differs from another only in case');
    assert.equal(why(`{"a":1${'0'.repeat(70)}.5}`), `MCP arguments cannot be decided: number 1${'0'.repeat(63)}… is neither an integer within ±2^53 nor a decimal of at most four fractional digits`);
    assert.throws(
      () => readMessage('{"a\\u2028\\r":1,"a\\u2028\\r":2}'),
      (e: unknown) => e instanceof MessageError && e.error_description === 'Invalid Request: member "a??" given twice (refused: readers would disagree on it)',
    );
  });

  it("refuses a record Cedar's JSON would read as an escape, keeps the rest", () => {
    for (const t of ['{"__extn":{"fn":"decimal","arg":"1.0"}}', '{"a":{"__entity":{"type":"Agent","id":"admin"}}}', '{"a":[{"__expr":"x"}]}', '{"__entity":5}']) {
      assert.ok(refused(t), t);
    }
    const r = parseArguments('{"a":{"__extn":1,"b":2},"__proto__":{"x":1},"constructor":3}');
    assert.deepEqual(Object.keys(r), ['a', '__proto__', 'constructor']);
    assert.equal(Object.getPrototypeOf(r), null);
  });

  it('accepts only what JSON.parse reads, and reads it alike', () => {
    const text = fc.oneof(
      fc.json({ maxDepth: 4 }),
      fc.dictionary(fc.string({ maxLength: 4 }), fc.jsonValue({ maxDepth: 3 })).map((d) => JSON.stringify(d)),
      fc.string({ maxLength: 30 }),
    );
    fc.assert(
      fc.property(text, (t) => {
        let got: unknown;
        try {
          got = parseArguments(t);
        } catch (e) {
          if (!(e instanceof ArgumentsError)) throw e;
          return;
        }
        const trimmed = t.trim();
        if (trimmed === '' || trimmed === 'null') return;
        const want = JSON.parse(t) as unknown;
        const plain = (v: unknown): unknown => {
          if (Array.isArray(v)) return v.map(plain);
          if (v && typeof v === 'object') {
            const e = (v as { __extn?: { arg: string } }).__extn;
            if (e && Object.keys(v).length === 1) return Number(e.arg);
            return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
          }
          return v;
        };
        assert.deepEqual(plain(got), JSON.parse(JSON.stringify(want)));
      }),
      RUNS,
    );
  });
});

describe('readMessage', () => {
  it('reads a request, its name and the verbatim text of its arguments', () => {
    const m = readMessage(' {"params":{"arguments": {"amount":99.0, "x":"\\u00e9"} ,"name":"refund_order"},"method":"tools/call","jsonrpc":"2.0","id":7}\n');
    assert.equal(m.kind, 'request');
    assert.equal(m.method, 'tools/call');
    assert.equal(m.name, 'refund_order');
    assert.equal(m.argumentsText, '{"amount":99.0, "x":"\\u00e9"}');
    assert.deepEqual(m.value, JSON.parse(' {"params":{"arguments": {"amount":99.0, "x":"\\u00e9"} ,"name":"refund_order"},"method":"tools/call","jsonrpc":"2.0","id":7}'));
    assert.equal(readMessage('{"jsonrpc":"2.0","method":"notifications/initialized"}').kind, 'notification');
    assert.equal(readMessage('{"jsonrpc":"2.0","id":1,"result":{}}').kind, 'response');
    // Only params.arguments of the message itself is the arguments.
    assert.equal(readMessage('{"method":"x","id":1,"arguments":{"a":1},"params":{"x":{"arguments":{}}}}').argumentsText, undefined);
    // __proto__ is a member, as JSON.parse reads it.
    const p = readMessage('{"method":"x","id":1,"params":{"__proto__":{"polluted":true}}}');
    assert.equal(({} as { polluted?: boolean }).polluted, undefined);
    assert.deepEqual(Object.keys(p.value.params as object), ['__proto__']);
  });

  it('refuses batches, members twice, lone surrogates and what is not JSON', () => {
    for (const t of [
      '[{"jsonrpc":"2.0","method":"ping","id":1}]',
      ' [ ]',
      '{"method":"tools/call","method":"ping","id":1}',
      '{"method":"tools/call","id":1,"params":{"name":"a","name":"b"}}',
      '{"method":"tools/call","id":1,"params":{"name":"a","_meta":{"x":1,"x":2}}}',
      '{"method":"tools/call","id":1,"params":{"name":"a\\ud800"}}',
      '{"method":"x","id":1} {}',
      '{"method":"x",}',
      '"x"',
      'null',
      '',
      '[' + '['.repeat(600) + ']'.repeat(600) + ']',
      '{"a":' + '['.repeat(600) + ']'.repeat(600) + '}',
    ]) {
      assert.throws(() => readMessage(t), MessageError, t.slice(0, 50));
    }
  });

  it('reads what JSON.parse reads, or refuses with a MessageError', () => {
    fc.assert(
      fc.property(fc.oneof(fc.json({ maxDepth: 4 }), fc.string({ maxLength: 40 }), fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 't', arguments: v } }))), (t) => {
        let m;
        try {
          m = readMessage(t);
        } catch (e) {
          if (!(e instanceof MessageError)) throw e;
          return;
        }
        assert.deepEqual(m.value, JSON.parse(t));
      }),
      RUNS,
    );
  });
});

describe('decideMCP', () => {
  it('checks the scope before the arguments, and the arguments before Cedar', async () => {
    const set = await CallPolicy.parse([{ name: 't.cedar', source: 'permit (principal, action, resource) when { context.arguments.a == 1 };' }]);
    const chain = { subject: 's', subjectIssuer: 'https://i', holder: 'h', actors: [], depth: 1, scopes: ['tools:a'], audiences: ['https://m'], root: 'r', lineage: ['r'], bound: false };
    const base = { server: 'https://m', method: 'tools/call', chain };
    assert.equal(decideMCP(set, { ...base, name: 'b', arguments: '{"a":null}' }).verdict, 'insufficient_scope');
    assert.equal(decideMCP(set, { ...base, name: 'b' }).scope, 'tools:b');
    assert.equal(decideMCP(set, { ...base, name: 'a', arguments: '{"a":null}' }).verdict, 'invalid_arguments');
    assert.equal(decideMCP(set, { ...base, name: 'a', arguments: '{"a":1}' }).verdict, 'allow');
    assert.equal(decideMCP(set, { ...base, name: 'a', arguments: '{"a":2}' }).verdict, 'deny');
    // Other methods have no arguments (an empty record): the policy's read of a missing member fails, so denies.
    const other = decideMCP(set, { ...base, method: 'logging/setLevel', arguments: '{"a":1}' });
    assert.equal(other.verdict, 'deny');
    assert.deepEqual(other.policies, ['t.cedar:1']);
    assert.equal(requiredScope('resources/read'), 'resources:read');
    assert.equal(requiredScope('completion/complete'), '');
  });
});
