/**
 * Enforcement on the real kernel: the seed's scenario, exec prevention, and
 * monitor/enforce switching. Policies are scoped to private copies of test
 * binaries so nothing else on the machine can be killed.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { repoRoot } from '../../services/lib/paths.js';
import { PolicyLoadError } from '../../services/lib/sensor-control.js';
import { startSensor, type SensorHarness } from '../support/sensor.js';
import { BUSYBOX, PROBE, compile, copyOf, exitsSeen, openatHook, policyEvents, policyYaml, run, scratch, scratchFile } from '../support/policy.js';

let h: SensorHarness;
test.before(() => { h = startSensor('enforcement'); });
test.after(() => { h.stop(); fs.rmSync(scratch, { recursive: true, force: true }); });

/** The shipped seed policy, narrowed to one binary of the test's own. */
function scopedSeedPolicy(name: string, bin: string, mode?: 'enforce' | 'monitor'): string {
  const doc = YAML.parse(fs.readFileSync(path.join(repoRoot, 'deploy', 'policies', 'deny-privileged-pod-start.yaml'), 'utf8'));
  doc.metadata.name = name;
  for (const hook of doc.spec.kprobes) for (const selector of hook.selectors) selector.matchBinaries = [{ operator: 'In', values: [bin] }];
  if (mode) doc.spec.options = [{ name: 'policy-mode', value: mode }];
  return YAML.stringify(doc);
}

test("the seed's scenario: CAP_SYS_ADMIN outside the host pid namespace opening a file is killed at the open", async () => {
  const shell = copyOf(BUSYBOX, 'privileged');
  const target = scratchFile('seed-target');
  const [program] = compile(scopedSeedPolicy('seed-scoped', shell));
  await h.sensor.loadPolicy(program!);
  try {
    // `exec 3<file` is one openat; "after" is printed only if the shell returns from it.
    const script = `echo before; exec 3<${target}; echo after`;
    const inNewPidNs = await run('unshare', ['--pid', '--fork', shell, 'sh', '-c', script]);
    const capsDropped = await run('unshare', ['--pid', '--fork', 'setpriv', '--inh-caps=-sys_admin', '--bounding-set=-sys_admin', shell, 'sh', '-c', script]);
    const onHost = await run(shell, ['sh', '-c', script]);

    assert.equal(inNewPidNs.stdout, 'before\n', 'killed: never returned to user space from the open');
    assert.equal(capsDropped.stdout, 'before\nafter\n', 'without CAP_SYS_ADMIN it survives');
    assert.equal(onHost.stdout, 'before\nafter\n', 'in the host pid namespace it survives');

    await exitsSeen(h, [inNewPidNs.pid]);
    const killedPid = h.events.find((e) => e.event.process_exec?.process.binary === shell && e.event.process_exec.parent?.pid.value === inNewPidNs.pid)?.event.process_exec?.process.pid.value;
    assert.ok(killedPid, 'exec of the privileged shell seen');
    const exit = h.events.find((e) => e.event.process_exit?.process.pid.value === killedPid)?.event.process_exit;
    assert.equal(exit?.signal, 'SIGKILL');
    const events = await policyEvents(h, 'seed-scoped', [killedPid]);
    assert.equal(events.length, 1);
    const [event] = events;
    assert.equal(event!.policy_name, 'seed-scoped');
    assert.equal(event!.function_name, 'fd_install');
    assert.equal(event!.action, 3, 'KPROBE_ACTION_SIGKILL');
    assert.equal(event!.args[1].file_arg.path, target, 'the file the new fd names');
    assert.ok(event!.args[0].int_arg >= 0, 'the fd');
    assert.ok(event!.process.cap.effective.includes(21), 'the event shows CAP_SYS_ADMIN');
    assert.equal(event!.process.ns.pid.is_host, false);
  } finally {
    await h.sensor.unloadPolicy('seed-scoped');
  }
});

test('monitor mode reports without killing; switching to enforce kills, without reloading programs', async () => {
  const shell = copyOf(BUSYBOX, 'monitored');
  const target = scratchFile('monitor-target');
  const [program] = compile(scopedSeedPolicy('seed-monitor', shell, 'monitor'));
  assert.equal(program!.mode, 'monitor');
  await h.sensor.loadPolicy(program!);
  try {
    const script = `exec 3<${target}; echo after`;
    const progsBefore = bpfProgramIds();
    const monitored = await run('unshare', ['--pid', '--fork', shell, 'sh', '-c', script]);
    assert.equal(monitored.stdout, 'after\n', 'monitor mode does not kill');
    const monitoredPid = await childOf(monitored.pid, shell);
    const reports = await policyEvents(h, 'seed-monitor', [monitoredPid]);
    const [report] = reports;
    assert.equal(report?.action, 3, 'the Sigkill is reported');
    assert.ok(reports.every((r) => r.tags?.includes('not-applied')), 'marked as not applied');

    await h.sensor.setPolicyMode('seed-monitor', 'enforce');
    const enforced = await run('unshare', ['--pid', '--fork', shell, 'sh', '-c', script]);
    assert.equal(enforced.stdout, '', 'enforce mode kills');
    const [applied] = await policyEvents(h, 'seed-monitor', [await childOf(enforced.pid, shell)]);
    assert.equal(applied?.tags?.includes('not-applied') ?? false, false);
    assert.deepEqual(bpfProgramIds(), progsBefore, 'the same BPF programs are loaded before and after the switch');
    const stats = h.sensor.policyStats('seed-monitor');
    assert.equal(stats.actionsMonitored, reports.length, 'one monitored action per fd the shell installed (its open, and a dup2 to fd 3)');
    assert.equal(stats.actionsApplied, 1, 'killed at the first');
  } finally {
    await h.sensor.unloadPolicy('seed-monitor');
  }
});

test('exec prevention: a matched binary never runs one instruction, 1,000 of 1,000 times', async () => {
  const markerDir = fs.mkdtempSync(path.join(scratch, 'markers-'));
  const target = '/run/vigil-test/exec-target'; // probe-rodata's compiled-in path
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.copyFileSync(PROBE, target);
  fs.chmodSync(target, 0o755);
  const marker = path.join(markerDir, 'ran');
  // The target's first act is creating the marker: without the policy, it does.
  assert.match(execFileSync(PROBE, ['fork-exec', '1', target, 'create', marker], { encoding: 'utf8' }), /^opened \d+\nafter\nkilled 0\n$/);
  assert.ok(fs.existsSync(marker), 'control run: the target creates its marker');
  fs.rmSync(marker);

  const [program] = compile(policyYaml('deny-exec', {
    tracepoints: [{
      subsystem: 'sched', event: 'sched_process_exec',
      selectors: [{ matchBinaries: [{ operator: 'In', values: [target] }], matchActions: [{ action: 'Sigkill' }] }],
    }],
  }));
  await h.sensor.loadPolicy(program!);
  try {
    // 500 fork+exec with the path from argv ...
    const fromArgv = execFileSync(PROBE, ['fork-exec', '500', target, 'create', marker], { encoding: 'utf8' });
    // ... and 500 fork-then-exec with the path in the binary's read-only data.
    const fromRodata = execFileSync(path.join(repoRoot, 'build', 'fixtures', 'probe-rodata'), ['fork-exec', '500', 'exec-target', 'create', marker], { encoding: 'utf8' });
    assert.equal(fromArgv.trim(), 'killed 500');
    assert.equal(fromRodata.trim(), 'killed 500');
    assert.equal(fs.existsSync(marker), false, 'the marker was never created');
    assert.ok(h.sensor.policyStats('deny-exec').actionsApplied >= 1000);
  } finally {
    await h.sensor.unloadPolicy('deny-exec');
    fs.rmSync(target, { force: true });
  }
});

test('a policy the kernel cannot serve is refused whole; loaded ones keep working', async () => {
  const bin = copyOf(PROBE, 'survivor');
  const target = scratchFile('survivor-target');
  const [good] = compile(policyYaml('keeps-working', { kprobes: [openatHook([{ matchBinaries: [{ operator: 'In', values: [bin] }], matchActions: [{ action: 'Post' }] }])] }));
  await h.sensor.loadPolicy(good!);
  try {
    const [bad] = compile(policyYaml('missing-symbol', { kprobes: [openatHook([{ matchActions: [{ action: 'Post' }] }])], uprobes: [{ path: bin, symbols: ['no_such_function'] }] }));
    await assert.rejects(h.sensor.loadPolicy(bad!), (err: unknown) => err instanceof PolicyLoadError && /no_such_function/.test(err.message));
    const after = await run(bin, ['open', target]);
    assert.ok((await policyEvents(h, 'keeps-working', [after.pid])).length > 0, 'the loaded policy still posts');
    assert.equal((await policyEvents(h, 'missing-symbol', [after.pid])).length, 0, 'nothing of the refused policy runs');
  } finally {
    await h.sensor.unloadPolicy('keeps-working');
  }
});

async function childOf(parentPid: number, binary: string): Promise<number> {
  await exitsSeen(h, [parentPid]);
  const pid = h.events.find((e) => e.event.process_exec?.process.binary === binary && e.event.process_exec.parent?.pid.value === parentPid)?.event.process_exec?.process.pid.value;
  assert.ok(pid, `a child ${binary} of ${parentPid}`);
  return pid;
}

/** Ids of every BPF program loaded on the machine. */
function bpfProgramIds(): number[] {
  return (JSON.parse(execFileSync('bpftool', ['prog', 'show', '-j'], { encoding: 'utf8' })) as { id: number }[]).map((p) => p.id).sort((a, b) => a - b);
}
