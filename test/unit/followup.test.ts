/**
 * Follow-up actions (services/enforcer/followup.ts): the lineage holds when
 * execs and exits come in either order, and policy events are taken only
 * while a loaded policy asks for a follow-up. The descendant killed here is a
 * real `sleep` of this test.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { LocalBus, type AuditRecord, type EventEnvelope } from '../../services/lib/bus.js';
import type { GetEventsResponse } from '../../services/lib/event-model.js';
import type { PolicyProgram } from '../../services/lib/policy-program.js';
import { MAX_TRACKED } from '../../services/lib/bounded-map.js';
import { FollowUpActions, Lineage } from '../../services/enforcer/followup.js';
import { exited } from '../support/wait.js';

test('lineage: an exit that comes before its exec keeps that process from ever being a target', () => {
  const lineage = new Lineage();
  lineage.onExec('parent', 100, '');
  lineage.onExec('child', 101, 'parent');
  lineage.onExit('early');
  lineage.onExec('early', 102, 'parent');
  lineage.onExec('grandchild', 103, 'early');
  assert.deepEqual(lineage.descendants('parent'), [101, 103]);
  lineage.onExit('child');
  assert.deepEqual(lineage.descendants('parent'), [103]);
});

test('lineage: a long-lived parent of many short-lived children holds only its live ones; a late child links its exited parent again', () => {
  const lineage = new Lineage();
  lineage.onExec('shell', 100, 'init');
  for (let i = 0; i < 100_000; i++) {
    lineage.onExec(`job-${i}`, 1000 + (i % 30_000), 'shell');
    lineage.onExit(`job-${i}`);
  }
  assert.equal(lineage.links, 1, 'the shell under init, and none of its 100,000 exited children');
  lineage.onExec('daemonizer', 200, 'shell');
  lineage.onExec('middle', 201, 'daemonizer');
  lineage.onExit('daemonizer');
  assert.deepEqual(lineage.descendants('shell'), [201], 'an exited process leads on to its live child');
  lineage.onExit('middle');
  assert.equal(lineage.links, 1, 'both unlinked once neither leads to a live process');
  lineage.onExec('late', 202, 'middle'); // forked by middle before it exited, exec'd after
  assert.deepEqual(lineage.descendants('shell'), [202]);
  lineage.onExit('late');
  assert.deepEqual(lineage.descendants('shell'), []);
  assert.equal(lineage.links, 1);
  lineage.onExec('loop-a', 300, 'loop-b'); // parent links that form a cycle (a tampered stream) end the walk
  lineage.onExec('loop-b', 301, 'loop-a');
  assert.deepEqual(lineage.descendants('loop-a'), [301]);
});

test('lineage: a process that forks and exits over and over keeps a bounded chain of exited ancestors', () => {
  const lineage = new Lineage();
  const hops = MAX_TRACKED + 10_000;
  lineage.onExec('hop-0', 1000, 'init');
  for (let i = 0; i < hops; i++) {
    lineage.onExec(`hop-${i + 1}`, 1000 + ((i + 1) % 30_000), `hop-${i}`);
    lineage.onExit(`hop-${i}`);
  }
  const live = 1000 + (hops % 30_000);
  assert.ok(lineage.links <= MAX_TRACKED + 1, `${lineage.links} links for ${hops} hops`);
  assert.deepEqual(lineage.descendants(`hop-${hops - 100}`), [live], 'a recent ancestor still leads to the live end');
  assert.deepEqual(lineage.descendants('hop-0'), [], 'the chain\'s first ancestors were dropped');
  lineage.onExit(`hop-${hops}`);
  assert.equal(lineage.links, 0, 'the whole kept chain goes with its live end');
});

const time = { seconds: 1_700_000_000, nanos: 0 };
const exec = (execId: string, pid: number, parent: string): EventEnvelope => {
  const event = { node_name: 'n', time, process_exec: { process: { exec_id: execId, pid: { value: pid }, parent_exec_id: parent } } } as unknown as GetEventsResponse;
  return { type: 'process_exec', event, bytes: new Uint8Array() };
};
const kill = (execId: string): EventEnvelope => {
  const event = { node_name: 'n', time, process_kprobe: { policy_name: 'p', action: 3, process: { exec_id: execId } } } as unknown as GetEventsResponse;
  return { type: 'process_kprobe', event, bytes: new Uint8Array() };
};

test('policy events are taken only while a loaded policy asks for a follow-up', async () => {
  const bus = new LocalBus();
  const audits: AuditRecord[] = [];
  bus.subscribeAudit((r) => { audits.push(r); });
  let followUps = false;
  let changed: (() => Promise<void>) | undefined;
  const followUp = new FollowUpActions(bus, 'n', {
    program: () => ({ followUp: 'kill-process-tree' }) as PolicyProgram,
    hasFollowUps: () => followUps,
    onChange: (listener) => { changed = listener; },
  });
  const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    bus.publishEvent(exec('offender', 999_999, ''));
    bus.publishEvent(exec('descendant', sleeper.pid!, 'offender'));
    bus.publishEvent(kill('offender'));
    assert.equal(audits.length, 0, 'no follow-up while no policy asks for one');
    assert.equal(sleeper.exitCode ?? sleeper.signalCode, null);

    followUps = true;
    await changed!();
    bus.publishEvent(kill('offender'));
    assert.equal(audits.length, 1);
    assert.deepEqual(audits[0]!.targets, [sleeper.pid]);
    await exited(sleeper);
    assert.equal(sleeper.signalCode, 'SIGKILL');

    followUps = false;
    await changed!();
    bus.publishEvent(exec('offender2', 999_998, ''));
    bus.publishEvent(kill('offender2'));
    assert.equal(audits.length, 1, 'policy events are let go again once no policy asks for a follow-up');
  } finally {
    sleeper.kill('SIGKILL');
    followUp.close();
  }
});
