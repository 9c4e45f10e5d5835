/**
 * HeapTrimPolicy (services/sensor/heap-trim.ts): a collection is asked for
 * only when the committed heap grew by the threshold and the ring was quiet
 * in the interval; growth counts from the last collection, or from a heap
 * V8 shrank by itself.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { HeapTrimPolicy } from '../../services/sensor/heap-trim.js';

const MiB = 1024 * 1024;

const collects = (policy: HeapTrimPolicy, heapBytes: number, records: number): boolean => policy.tick(heapBytes, records).collect;

test('a grown heap is trimmed once the ring is quiet, and growth counts from the trim', () => {
  const policy = new HeapTrimPolicy(40 * MiB, 0, 32 * MiB, 1000);
  assert.equal(collects(policy, 60 * MiB, 500), false, 'grown by 20 MiB only');
  assert.equal(collects(policy, 100 * MiB, 50_500), false, 'grown by 60 MiB, but 50,000 records in the interval: busy');
  assert.equal(collects(policy, 100 * MiB, 50_600), true, 'grown by 60 MiB and 100 records: quiet');
  policy.collected(45 * MiB);
  assert.equal(collects(policy, 70 * MiB, 50_600), false, 'grown by 25 MiB since the trim');
  assert.equal(collects(policy, 80 * MiB, 50_600), true, 'grown by 35 MiB since the trim');
});

test('a heap V8 shrank by itself lowers the mark growth counts from', () => {
  const policy = new HeapTrimPolicy(100 * MiB, 0, 32 * MiB, 1000);
  assert.equal(collects(policy, 40 * MiB, 0), false);
  assert.equal(collects(policy, 75 * MiB, 0), true, 'grown by 35 MiB from the 40 MiB V8 left');
});

test('the C heap is trimmed at the first quiet interval after the start and after each busy one, not again while quiet', () => {
  const policy = new HeapTrimPolicy(40 * MiB, 0, 32 * MiB, 1000);
  const trims = [[10, 'start-up, then quiet'], [20, 'still quiet'], [5000, 'busy'], [5100, 'quiet again'], [5200, 'quiet'], [9000, 'busy'], [20_000, 'busy'], [20_001, 'quiet']]
    .map(([records, why]) => [policy.tick(40 * MiB, records as number).trimNative, why]);
  assert.deepEqual(trims, [[true, 'start-up, then quiet'], [false, 'still quiet'], [false, 'busy'], [true, 'quiet again'], [false, 'quiet'], [false, 'busy'], [false, 'busy'], [true, 'quiet']]);
});
