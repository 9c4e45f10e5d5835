/**
 * `vigil agent` end to end, as a user runs it: a separate agent process on the
 * real kernel, its JSON lines on stdout, the gRPC API through the `vigil` CLI
 * and a real gRPC client, and a policy added through the API that kills in
 * the kernel.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../services/lib/paths.js';
import { SensorsClient } from '../../services/cli/client.js';
import { startAgent, type AgentProcess } from '../support/agent.js';
import { BUSYBOX, PROBE, copyOf, openatHook, policyYaml, run, scratch, scratchFile } from '../support/policy.js';
import { waitFor } from '../support/wait.js';

const VIGIL = path.join(repoRoot, 'bin', 'vigil.js');
let agent: AgentProcess;
let agentStdout = '';

test.before(async () => {
  agent = await startAgent(['--node-name', 'e2e-node'], 'pipe');
  agent.child.stdout!.on('data', (d: Buffer) => { agentStdout += d.toString(); });
});
test.after(async () => {
  await agent.stop();
  fs.rmSync(scratch, { recursive: true, force: true });
});

/** A `vigil` CLI process with stdin closed (so it talks to the server, not a pipe). */
function vigil(args: string[]): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, [VIGIL, ...args, '--server', `localhost:${agent.port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  return { child, output: () => out };
}

/**
 * Repeats `trigger` until `seen` holds: a new event stream is subscribed at a
 * moment its client is not told of, and events before it are not delivered.
 */
async function untilStreamed(what: string, trigger: () => Promise<unknown>, seen: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    await trigger();
    if (await waitFor(what, () => (seen() ? true : undefined), 250).catch(() => false)) return;
  }
  assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

async function vigilDone(args: string[]): Promise<{ code: number | null; output: string }> {
  const v = vigil(args);
  const code = await new Promise<number | null>((resolve) => v.child.once('exit', resolve));
  return { code, output: v.output() };
}

test('events of real processes stream as compact lines through the CLI, filtered on the server', async () => {
  const events = vigil(['events', '-o', 'compact', '--color', 'never', '--binary', '/ls$']);
  await untilStreamed('the CLI stream subscribed', () => run('/bin/ls', ['-d', scratch]), () => events.output().includes(`ls -d ${scratch}`));
  const ls = await run('/bin/ls', ['-la', '/']);
  await run('/bin/sh', ['-c', 'exit 2']);
  const lsBinary = fs.realpathSync('/bin/ls');
  const lines = await waitFor('compact exec and exit lines of ls', () => {
    const got = events.output().split('\n').filter((l) => l.includes(lsBinary) && l.includes('-la /'));
    return got.length >= 2 ? got : undefined;
  });
  events.child.kill('SIGINT');
  assert.ok(lines.some((l) => /^🚀 process host \/usr\/bin\/ls -la \/( |$)/.test(l)), lines.join('\n'));
  assert.ok(lines.some((l) => /^💥 exit {4}host \/usr\/bin\/ls -la \/ 0( |$)/.test(l)), lines.join('\n'));
  assert.ok(!events.output().includes('exit 2'), 'the binary filter left sh out');
  assert.equal(ls.code, 0);
});

test("the agent's stdout is Tetragon JSON that `vigil events` reads from a pipe", async () => {
  const marker = scratchFile('json-marker');
  await run('/bin/cat', [marker]);
  const lines = await waitFor('the cat exec and exit on stdout', () => {
    const got = agentStdout.split('\n').filter((l) => l.includes(marker));
    return got.length >= 2 ? got : undefined;
  });
  const exec = JSON.parse(lines.find((l) => l.startsWith('{"process_exec"'))!);
  assert.equal(exec.node_name, 'e2e-node');
  assert.equal(exec.process_exec.process.binary, fs.realpathSync('/bin/cat'));
  assert.equal(exec.process_exec.process.arguments, marker);
  assert.match(exec.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$/);
  assert.equal(typeof exec.process_exec.process.pid, 'number');

  const piped = spawn(process.execPath, [VIGIL, 'events', '-o', 'compact', '--color', 'never'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  piped.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  piped.stdin.end(lines.join('\n') + '\n');
  await new Promise((resolve) => piped.once('exit', resolve));
  assert.match(out, new RegExp(`^🚀 process host /usr/bin/cat ${marker}`, 'm'));
  assert.match(out, new RegExp(`^💥 exit {4}host /usr/bin/cat ${marker} 0`, 'm'));
});

test('a field filter over a real gRPC client keeps only the fields asked for', async () => {
  const client = new SensorsClient(`localhost:${agent.port}`);
  const stream = client.serverStream('GetEvents', {
    allow_list: [{ binary_regex: ['/true$'], event_set: [1] }],
    field_filters: [{ event_set: [1], fields: { paths: ['process.binary', 'process.pid'] }, action: 0 }],
  });
  const received: Record<string, unknown>[] = [];
  stream.on('data', (e: Record<string, unknown>) => received.push(e));
  stream.on('error', () => { /* cancelled below */ });
  await untilStreamed('the gRPC stream subscribed', () => run('/bin/true', []), () => received.length > 0);
  const done = await run('/bin/true', []);
  const event = await waitFor('the filtered exec', () => received.find((e) => (e.process_exec as { process: { pid: { value: number } } } | undefined)?.process.pid.value === done.pid));
  stream.cancel();
  client.close();
  const proc = (event.process_exec as { process: Record<string, unknown> }).process;
  assert.deepEqual(Object.keys(proc).sort(), ['binary', 'pid']);
  assert.equal(proc.binary, fs.realpathSync('/bin/true'));
});

test('a policy added with the CLI kills in the kernel; list, mode, disable and delete work', async () => {
  const bin = copyOf(PROBE, 'e2e-victim');
  const target = scratchFile('e2e-target');
  const file = path.join(scratch, 'e2e-policy.yaml');
  fs.writeFileSync(file, policyYaml('e2e-kill', {
    kprobes: [openatHook([{ matchBinaries: [{ operator: 'In', values: [bin] }], matchArgs: [{ index: 1, operator: 'Equal', values: [target] }], matchActions: [{ action: 'Sigkill' }] }])],
  }));
  const added = await vigilDone(['policy', 'add', file]);
  assert.equal(added.code, 0, added.output);

  const killed = await run(bin, ['open', target]);
  assert.equal(killed.signal, 'SIGKILL');
  assert.equal(killed.stdout, '');

  const listed = await vigilDone(['policy', 'list', '-o', 'json']);
  assert.equal(listed.code, 0, listed.output);
  const policy = (JSON.parse(listed.output).policies as Record<string, unknown>[]).find((p) => p.name === 'e2e-kill')!;
  assert.equal(policy.state, 'TP_STATE_ENABLED');
  assert.equal(policy.mode, 'TP_MODE_ENFORCE');

  assert.equal((await vigilDone(['policy', 'mode', 'e2e-kill', 'monitor'])).code, 0);
  const monitored = await run(bin, ['open', target]);
  assert.equal(monitored.signal, null, 'monitor mode lets it run');
  assert.match(monitored.stdout, /after/);

  assert.equal((await vigilDone(['policy', 'disable', 'e2e-kill'])).code, 0);
  assert.equal((await vigilDone(['policy', 'delete', 'e2e-kill'])).code, 0);
  const after = await vigilDone(['policy', 'list', '-o', 'json']);
  assert.ok(!after.output.includes('e2e-kill'));
  const bad = await vigilDone(['policy', 'add', path.join(repoRoot, 'test', 'fixtures', 'bad-policies', '13-unknown-operator.yaml')]);
  assert.equal(bad.code, 1);
  assert.match(bad.output, /INVALID_ARGUMENT: .*spec\.kprobes\[0\]\.selectors\[0\]\.matchArgs\[0\]\.operator: unknown operator "Equals"/);
});

test('the agent serves Prometheus metrics counting real events', async () => {
  assert.ok(agent.metricsPort, 'metrics port announced');
  await run('/bin/true', []);
  const text = await (async () => {
    for (let i = 0; i < 50; i++) {
      const res = await fetch(`http://127.0.0.1:${agent.metricsPort}/metrics`);
      const t = await res.text();
      if (/vigil_events_total\{[^}]*type="process_exec"[^}]*\} [1-9]/.test(t)) return t;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('no process_exec in vigil_events_total');
  })();
  assert.match(text, /^vigil_build_info\{[^}]*version="/m);
  assert.match(text, /^vigil_process_cache_size\{[^}]*\} [1-9]/m);
});

test('followup-action kill-process-tree: the enforcer kills what the offender left running, and audits it', async () => {
  const shell = copyOf(BUSYBOX, 'tree');
  const target = scratchFile('tree-target');
  const file = path.join(scratch, 'tree-policy.yaml');
  fs.writeFileSync(file, policyYaml('e2e-tree', {
    options: [{ name: 'followup-action', value: 'kill-process-tree' }],
    kprobes: [openatHook([{ matchBinaries: [{ operator: 'In', values: [shell] }], matchArgs: [{ index: 1, operator: 'Equal', values: [target] }], matchActions: [{ action: 'Sigkill' }] }])],
  }));
  assert.equal((await vigilDone(['policy', 'add', file])).code, 0);
  try {
    const pidFile = path.join(scratch, 'tree-child.pid');
    // The shell starts a long-lived child, then opens the target and is killed.
    const offender = await run(shell, ['sh', '-c', `/bin/sleep 60 & echo $! > ${pidFile}; exec 3<${target}; wait`]);
    assert.equal(offender.signal, 'SIGKILL');
    const childPid = Number(fs.readFileSync(pidFile, 'utf8'));
    // Dead: gone, or a zombie (re-parented to pid 1, which need not reap it here).
    const dead = (): boolean => { try { return / Z /.test(fs.readFileSync(`/proc/${childPid}/stat`, 'utf8').replace(/^.*\)/, ' ')); } catch { return true; } };
    await waitFor('the left-behind child to be killed', () => (dead() ? true : undefined))
      .catch((err: Error) => { throw new Error(`${err.message} (pid ${childPid}); agent log: ${agent.stderr().slice(-600)}`); });
    const audit = await waitFor('the audit record', () => agent.stderr().split('\n').find((l) => l.includes('"action":"kill-process-tree"') && l.includes(`${childPid}`)));
    assert.match(audit, /"policy":"e2e-tree"/);
    assert.match(audit, /"outcome":"done"/);
  } finally {
    await vigilDone(['policy', 'delete', 'e2e-tree']);
  }
});
