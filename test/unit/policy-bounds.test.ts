/**
 * Policy texts past the parser's bounds (size, depth, nodes, aliases, time)
 * are refused as invalid, quickly, off the event loop, and leave what is
 * loaded alone.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePolicyDocuments, POLICY_LIMITS } from '../../services/enforcer/compiler/parse.js';
import { PARSE_WORKER_LIMITS } from '../../services/enforcer/compiler/parse-pool.js';
import { PolicyInvalidError, PolicyStore } from '../../services/enforcer/policy-store.js';
import { FakeControl, fakeCompileEnv, openatArgHook as hook, policyText, policyWithHooks } from '../support/policy-control.js';

/** 99 aliases to a 20,000-item list: 2 million values once expanded. */
export function aliasBomb(): string {
  const items = Array.from({ length: 20_000 }, (_, i) => `/v${i}`).join(', ');
  return policyWithHooks('bomb', [hook(`&big [${items}]`), ...Array.from({ length: 99 }, () => hook('*big'))]);
}

/** ~2 MB of `[`. */
export const nestedBrackets = (n = 1_950_000): string => '['.repeat(n);

/** Runs `work` while a 10 ms interval ticks; the longest gap between ticks (ms) says how long the event loop was held. */
async function withLoopWatch<T>(work: () => Promise<T>): Promise<{ result: T; maxGapMs: number; ms: number }> {
  let last = performance.now();
  let maxGapMs = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    maxGapMs = Math.max(maxGapMs, now - last);
    last = now;
  }, 10);
  const start = performance.now();
  try {
    const result = await work();
    const end = performance.now();
    maxGapMs = Math.max(maxGapMs, end - last);
    return { result, maxGapMs, ms: end - start };
  } finally {
    clearInterval(tick);
  }
}

async function refusal(store: PolicyStore, text: string): Promise<PolicyInvalidError> {
  const err = await store.add(text).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof PolicyInvalidError, `expected PolicyInvalidError, got ${String(err)}`);
  return err;
}

describe('policy text bounds', () => {
  const bad: [string, () => string, RegExp][] = [
    ['a ~2 MB document of nested [', () => nestedBrackets(), /policy text is 1950000 bytes, more than the limit of 1048576 \(1 MiB\)/],
    ['a 1 MiB document of nested [', () => nestedBrackets(POLICY_LIMITS.maxBytes), /^line 1: YAML nested more than 64 levels deep$/],
    ['compact block sequences nested 400,000 deep', () => '- '.repeat(400_000), /^line 1: YAML nested more than 64 levels deep$/],
    ['99 aliases to a 20,000-item list', aliasBomb, /^line 7: more than 100000 YAML nodes once aliases are expanded$/],
    ['a flow list of 500,000 items', () => `[${'1,'.repeat(500_000)}]`, /^line 1: more than 100000 YAML nodes$/],
    ['a 1.5 MB document', () => `${policyText('large')}# ${'x'.repeat(1_500_000)}\n`, /more than the limit of 1048576/],
    ['150 aliases to a scalar (yaml\'s alias budget)', () => policyWithHooks('aliases', [hook('[&v /a]'), ...Array.from({ length: 150 }, () => hook('[*v]'))]),
      /invalid YAML: Excessive alias count/],
  ];

  for (const [what, text, reason] of bad) {
    it(`refuses ${what} as invalid, within 3 s, the event loop free, what is loaded kept`, async () => {
      const control = new FakeControl();
      const store = new PolicyStore(control, fakeCompileEnv(), () => {});
      await store.add(policyText('keep'));
      const input = text();
      const { result: err, maxGapMs, ms } = await withLoopWatch(() => refusal(store, input));
      assert.equal(err.kind, 'invalid');
      assert.match(err.message, reason);
      assert.ok(ms < 3000, `answered in ${ms.toFixed(0)} ms`);
      assert.ok(maxGapMs < 500, `event loop held ${maxGapMs.toFixed(0)} ms`);
      assert.deepEqual(store.list().map((p) => [p.name, p.state]), [['keep', 'enabled']]);
      assert.deepEqual(control.calls, ['load keep']);
    });
  }

  it('refuses four bad documents at once, each within 3 s, the event loop free', async () => {
    const store = new PolicyStore(new FakeControl(), fakeCompileEnv(), () => {});
    await store.add(policyText('keep'));
    const texts = [nestedBrackets(), nestedBrackets(POLICY_LIMITS.maxBytes), aliasBomb(), nestedBrackets(POLICY_LIMITS.maxBytes - 1)];
    const { result, maxGapMs, ms } = await withLoopWatch(() => Promise.all(texts.map((t) => refusal(store, t))));
    assert.equal(result.length, 4);
    assert.ok(ms < 3000 * 4, `answered in ${ms.toFixed(0)} ms`);
    assert.ok(maxGapMs < 500, `event loop held ${maxGapMs.toFixed(0)} ms`);
    assert.deepEqual(store.list().map((p) => p.name), ['keep']);
  });

  it('names the line where the depth is crossed', async () => {
    const store = new PolicyStore(new FakeControl(), fakeCompileEnv(), () => {});
    const text = `${policyText('deep')}    values: ${'['.repeat(100)}${']'.repeat(100)}\n`;
    const err = await refusal(store, text);
    assert.equal(err.line, 12);
    assert.match(err.message, /^line 12: YAML nested more than 64 levels deep$/);
    // The same from the in-thread parser, with the source named.
    assert.throws(() => parsePolicyDocuments(text, 'deep.yaml'), /^PolicyError: deep\.yaml:12: YAML nested more than 64 levels deep$/);
  });

  it('still accepts aliases and large lists within the bounds, with lines for the compiler\'s errors', async () => {
    const store = new PolicyStore(new FakeControl(), fakeCompileEnv(), () => {});
    const items = Array.from({ length: 5_000 }, (_, i) => `/v${i}`).join(', ');
    await store.add(policyWithHooks('aliased', [hook(`&paths [${items}]`), hook('*paths'), hook('*paths')]));
    assert.deepEqual(store.list().map((p) => [p.name, p.hooks.length]), [['aliased', 3]]);
    // A compiler error (after the worker) still names its line.
    const err = await refusal(store, policyText('bad', { syscall: 'no_such_call' }));
    assert.equal(err.line, 7);
    assert.equal(err.path, 'spec.kprobes[0].call');
  });

  it('refuses a text that takes longer than the time bound, ending the worker, and parses the next one', async () => {
    const store = new PolicyStore(new FakeControl(), fakeCompileEnv(), () => {});
    const items = Array.from({ length: 40_000 }, (_, i) => `/v${i}`).join(', ');
    const saved = PARSE_WORKER_LIMITS.timeMs;
    PARSE_WORKER_LIMITS.timeMs = 5;
    try {
      const err = await refusal(store, policyWithHooks('slow', [hook(`[${items}]`)]));
      assert.match(err.message, /took longer than 5 ms to parse and validate/);
    } finally {
      PARSE_WORKER_LIMITS.timeMs = saved;
    }
    await store.add(policyText('after'));
    assert.deepEqual(store.list().map((p) => p.name), ['after']);
  });
});
