/**
 * The sensor on the real kernel: real BPF, real processes. These fail (never
 * skip) when the kernel refuses the programs.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startSensor, type SensorHarness } from '../support/sensor.js';
import { exited, waitFor } from '../support/wait.js';

let harness: SensorHarness;
const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-sensor-')));

test.before(() => { harness = startSensor(); });
test.after(() => { harness.stop(); fs.rmSync(tmp, { recursive: true, force: true }); });

function execOf(pid: number) {
  return harness.eventsFor([pid]).find((e) => e.type === 'process_exec')?.event.process_exec;
}
function exitOf(pid: number) {
  return harness.eventsFor([pid]).find((e) => e.type === 'process_exit')?.event.process_exit;
}

test('a spawned process yields one exec with its arguments, cwd and parent, and one exit with its status', async () => {
  const cwd = path.join(tmp, 'work dir');
  fs.mkdirSync(cwd);
  const child = spawn('/bin/sh', ['-c', 'exit 3', 'arg one', 'two'], { cwd });
  const pid = child.pid!;
  assert.equal((await exited(child)).code, 3);
  const exit = await waitFor('exit event', () => exitOf(pid));
  const exec = execOf(pid)!;
  assert.ok(exec, 'exec event');

  assert.equal(harness.eventsFor([pid]).filter((e) => e.type === 'process_exec').length, 1);
  assert.equal(exec.process.binary, fs.realpathSync('/bin/sh'));
  assert.equal(exec.process.arguments, '-c "exit 3" "arg one" two');
  assert.equal(exec.process.cwd, cwd);
  assert.equal(exec.process.pid.value, pid);
  assert.equal(exec.process.uid.value, process.getuid!());
  assert.match(exec.process.flags, /^execve/);
  assert.ok(exec.process.exec_id.length > 0);

  assert.ok(exec.parent, 'parent');
  assert.equal(exec.parent.pid.value, process.pid);
  assert.equal(exec.parent.binary, fs.realpathSync(process.execPath));
  assert.equal(exec.process.parent_exec_id, exec.parent.exec_id);
  assert.equal(harness.sensor.processCache().lookupPid(process.pid)?.exec_id, exec.parent.exec_id);

  assert.equal(exit.process.exec_id, exec.process.exec_id);
  assert.equal(exit.status, 3);
  assert.equal(exit.signal, '');
  assert.equal(exit.parent?.exec_id, exec.parent.exec_id);
  assert.equal(harness.eventsFor([pid]).filter((e) => e.type === 'process_exit').length, 1);
});

test('a process killed by SIGKILL shows the signal', async () => {
  const child = spawn('/bin/sleep', ['30']);
  const pid = child.pid!;
  await waitFor('exec event', () => execOf(pid));
  child.kill('SIGKILL');
  const exit = await waitFor('exit event', () => exitOf(pid));
  assert.equal(exit.signal, 'SIGKILL');
  assert.equal(exit.status, 0);
  assert.equal(exit.process.binary, fs.realpathSync('/bin/sleep'));
  assert.equal(exit.process.arguments, '30');
});

test('exec records carry capabilities, namespaces and credentials', async () => {
  const child = spawn('/bin/true');
  const pid = child.pid!;
  await exited(child);
  const exec = await waitFor('exec event', () => execOf(pid));
  const capEff = BigInt('0x' + /CapEff:\s*(\w+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]);
  assert.deepEqual(exec.process.cap?.effective.length, [...capEff.toString(2)].filter((b) => b === '1').length);
  assert.equal(exec.process.cap?.effective.includes(21), (capEff >> 21n & 1n) === 1n, 'CAP_SYS_ADMIN bit');
  const pidNs = Number(/\[(\d+)\]/.exec(fs.readlinkSync('/proc/self/ns/pid'))![1]);
  assert.equal(exec.process.ns?.pid?.inum, pidNs);
  assert.equal(exec.process.ns?.pid?.is_host, true);
  assert.equal(exec.process.process_credentials?.euid?.value, process.geteuid!());
});

test('a process in a new pid namespace is seen with its own pid namespace', async () => {
  const child = spawn('unshare', ['--pid', '--fork', '/bin/sh', '-c', 'sleep 0.2; exit 0']);
  await exited(child);
  const exec = await waitFor('exec in new pid ns', () => harness.events.find((e) =>
    e.event.process_exec?.process.binary === fs.realpathSync('/bin/sh') && e.event.process_exec.process.arguments === '-c "sleep 0.2; exit 0"')?.event.process_exec);
  assert.equal(exec.process.ns?.pid?.is_host, false);
});

test('processes running before the sensor started have identities and parents', async () => {
  const sleeper = spawn('/bin/sleep', ['60'], { cwd: tmp });
  await waitFor('sleep running', () => (fs.readlinkSync(`/proc/${sleeper.pid}/exe`).endsWith('sleep') ? true : undefined));
  const late = startSensor('late-node');
  try {
    const cache = late.sensor.processCache();
    const proc = cache.lookupPid(sleeper.pid!);
    assert.ok(proc, 'pre-existing process is in the cache');
    assert.equal(proc.binary, fs.realpathSync('/bin/sleep'));
    assert.equal(proc.arguments, '60');
    assert.equal(proc.cwd, tmp);
    assert.match(proc.flags, /procFS/);
    const me = cache.lookupPid(process.pid);
    assert.ok(me, 'the test process itself');
    assert.equal(proc.parent_exec_id, me.exec_id);
    assert.notEqual(me.parent_exec_id, '', 'the test process has a parent too');

    sleeper.kill('SIGKILL');
    const exit = await waitFor('exit of pre-existing process', () => late.eventsFor([sleeper.pid!]).find((e) => e.type === 'process_exit')?.event.process_exit);
    assert.equal(exit.process.exec_id, proc.exec_id);
    assert.equal(exit.parent?.exec_id, me.exec_id);
    assert.equal(exit.signal, 'SIGKILL');
  } finally {
    late.stop();
    sleeper.kill('SIGKILL');
  }
});

test('exec_ids are unique over 10,000 short-lived processes and the cache returns to its size', async () => {
  const cache = harness.sensor.processCache();
  const sizeBefore = cache.stats().size;
  const shell = spawn('/bin/bash', ['-c', 'for ((i = 0; i < 10000; i++)); do /bin/true; done']);
  const shellPid = shell.pid!;
  assert.equal((await exited(shell)).code, 0);
  const shellExec = await waitFor('loop shell exec', () => execOf(shellPid));
  await waitFor('loop shell exit', () => exitOf(shellPid));
  const children = await waitFor('10,000 exits', () => {
    const exits = harness.events.filter((e) => e.event.process_exit?.parent?.exec_id === shellExec.process.exec_id);
    return exits.length >= 10_000 ? exits : undefined;
  }, 60_000);
  const execIds = new Set(harness.events
    .filter((e) => e.event.process_exec?.process.parent_exec_id === shellExec.process.exec_id)
    .map((e) => e.event.process_exec!.process.exec_id));
  assert.equal(execIds.size, 10_000, 'one distinct exec_id per /bin/true');
  assert.equal(children.length, 10_000);
  for (const id of execIds) assert.equal(cache.lookupExecId(id), undefined, 'exited processes leave the cache');
  assert.equal(cache.lookupExecId(shellExec.process.exec_id), undefined);
  // The cache holds every process of the machine: on a busy one, unrelated processes are still exiting now.
  const settled = await waitFor('the cache back near its size', () => (cache.stats().size <= sizeBefore + 5 ? true : undefined), 30_000).catch(() => false);
  assert.ok(settled, `cache size ${cache.stats().size} not back near ${sizeBefore} within 30 s`);
  const stats = harness.sensor.stats();
  assert.equal(stats.kernelLost, 0, 'no record lost in the kernel');
  assert.equal(stats.ring.droppedRecords, 0, 'no record dropped between thread and JS');
});
