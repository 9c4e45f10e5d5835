/**
 * GetEvents' pid_set filter (services/lib/event-filters.ts) on its own: its
 * descendants are learned from events and known by exec_id, forgotten at
 * exit, and its memory is bounded. The grpc-server test runs the other
 * filters, and this one, through a real server.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import type { EventEnvelope } from '../../services/lib/bus.js';
import { MAX_TRACKED } from '../../services/lib/bounded-map.js';
import { compileEventFilter } from '../../services/lib/event-filters.js';

const proc = (execId: string, pid: number) => ({ exec_id: execId, pid: { value: pid } });

function event(type: 'process_exec' | 'process_exit', process: [string, number], parent: [string, number]): EventEnvelope {
  const payload = { process: proc(...process), parent: proc(...parent) };
  return { type, event: { [type]: payload }, bytes: new Uint8Array() } as unknown as EventEnvelope;
}

test('pid_set: a descendant matches until its exit; its pid reused by another process does not', () => {
  const pass = compileEventFilter({ allow_list: [{ pid_set: [100] }] });
  assert.equal(pass(event('process_exec', ['child', 200], ['root', 100])), true, 'a child of a listed pid');
  assert.equal(pass(event('process_exec', ['grandchild', 300], ['child', 200])), true, 'its child in turn');
  assert.equal(pass(event('process_exit', ['child', 200], ['root', 100])), true, 'the exit of a descendant');
  assert.equal(pass(event('process_exec', ['stranger', 200], ['other', 999])), false, 'pid 200 reused outside the set');
  assert.equal(pass(event('process_exec', ['late', 301], ['child', 200])), true, 'forked before its parent exited, exec after');
  assert.equal(pass(event('process_exec', ['grandchild-again', 300], ['grandchild', 300])), true, 'a live descendant still matches');
});

test('pid_set: the memory of exited descendants is bounded, the oldest going first', () => {
  const pass = compileEventFilter({ allow_list: [{ pid_set: [100] }] });
  for (let i = 0; i <= MAX_TRACKED; i++) {
    assert.equal(pass(event('process_exec', [`job-${i}`, 1000 + i], ['root', 100])), true);
    assert.equal(pass(event('process_exit', [`job-${i}`, 1000 + i], ['root', 100])), true);
  }
  assert.equal(pass(event('process_exec', ['late', 5], ['job-0', 1000])), false, 'the first exited job was forgotten');
  assert.equal(pass(event('process_exec', ['late', 6], [`job-${MAX_TRACKED}`, 1000 + MAX_TRACKED])), true, 'the last is remembered');
});
