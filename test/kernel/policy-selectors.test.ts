/**
 * Every selector kind and operator, in the kernel: for each, one run that must
 * match (a policy event for that process) and one that must not. Each policy
 * is scoped to a private copy of a test binary or to processes the test
 * started, so nothing else on the machine is touched.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startSensor, type SensorHarness } from '../support/sensor.js';
import { exited } from '../support/wait.js';
import { BUSYBOX, PROBE, compile, copyOf, exitsSeen, openatHook, policyEvents, policyYaml, run, scratch, scratchFile, withPolicy, type PolicyEvent, type RunResult } from '../support/policy.js';

let h: SensorHarness;
test.before(() => { h = startSensor('selectors'); });
test.after(() => { h.stop(); fs.rmSync(scratch, { recursive: true, force: true }); });

const post = [{ action: 'Post' }];
const HOSTNAME = '/etc/hostname';
const PASSWD = '/etc/passwd';
let policyCount = 0;

interface Case {
  name: string;
  /** Builds the policy's selectors for this case's private binary. */
  selectors: (bin: string) => Record<string, unknown>[];
  matching: (bin: string) => Promise<RunResult>;
  notMatching: (bin: string) => Promise<RunResult>;
  binary?: string;
}

/** The last two components of a private copy's path ("case-7/probe"): a postfix only it has. */
const tail = (bin: string): string => path.join(path.basename(path.dirname(bin)), path.basename(bin));
const scope = (bin: string) => ({ matchBinaries: [{ operator: 'In', values: [bin] }] });
const open = (file: string) => (bin: string) => run(bin, ['open', file]);
const create = (bin: string) => run(bin, ['create', path.join(scratch, `created-${++policyCount}`)]);
const setpriv = (args: string[]) => (bin: string) => run('setpriv', [...args, bin, 'open', HOSTNAME]);
const dropSysAdmin = ['--inh-caps=-sys_admin', '--bounding-set=-sys_admin'];

const argCase = (op: string, values: string[], yes: string, no: string): Case => ({
  name: `matchArgs ${op} ${values.join(',')}`,
  selectors: (bin) => [{ ...scope(bin), matchArgs: [{ index: 1, operator: op, values }], matchActions: post }],
  matching: open(yes), notMatching: open(no),
});

const cases: Case[] = [
  argCase('Equal', [HOSTNAME], HOSTNAME, PASSWD),
  argCase('NotEqual', [HOSTNAME], PASSWD, HOSTNAME),
  argCase('Prefix', ['/etc/host'], HOSTNAME, PASSWD),
  argCase('NotPrefix', ['/etc/host'], PASSWD, HOSTNAME),
  argCase('Postfix', ['name'], HOSTNAME, PASSWD),
  argCase('NotPostfix', ['name'], PASSWD, HOSTNAME),
  {
    name: 'matchArgs Mask on flags (O_CREAT)',
    selectors: (bin) => [{ ...scope(bin), matchArgs: [{ index: 2, operator: 'Mask', values: ['64'] }], matchActions: post }],
    matching: create, notMatching: open(HOSTNAME),
  },
  {
    name: 'matchArgs GreaterThan on flags',
    selectors: (bin) => [{ ...scope(bin), matchArgs: [{ index: 2, operator: 'GreaterThan', values: ['1'] }], matchActions: post }],
    matching: create, notMatching: open(HOSTNAME),
  },
  {
    name: 'matchArgs LessThan on flags',
    selectors: (bin) => [{ ...scope(bin), matchArgs: [{ index: 2, operator: 'LessThan', values: ['1'] }], matchActions: post }],
    matching: open(HOSTNAME), notMatching: create,
  },
  {
    name: 'matchArgs numeric Equal / NotEqual on dfd (AT_FDCWD)',
    selectors: (bin) => [{ ...scope(bin), matchArgs: [{ index: 0, operator: 'Equal', values: ['-100'] }, { index: 1, operator: 'NotEqual', values: [PASSWD] }], matchActions: post }],
    matching: open(HOSTNAME), notMatching: open(PASSWD),
  },
  {
    name: 'matchReturnArgs LessThan 0 (failed open)',
    selectors: (bin) => [{ ...scope(bin), matchReturnArgs: [{ index: 0, operator: 'LessThan', values: ['0'] }], matchActions: post }],
    matching: open('/nonexistent/file'), notMatching: open(HOSTNAME),
  },
  {
    name: 'matchReturnArgs GreaterThan 2 (an fd)',
    selectors: (bin) => [{ ...scope(bin), matchReturnArgs: [{ index: 0, operator: 'GreaterThan', values: ['2'] }], matchActions: post }],
    matching: open(HOSTNAME), notMatching: open('/nonexistent/file'),
  },
  {
    name: 'matchBinaries In',
    selectors: (bin) => [{ matchBinaries: [{ operator: 'In', values: [bin] }], matchArgs: [{ index: 1, operator: 'Equal', values: [HOSTNAME] }], matchActions: post }],
    matching: open(HOSTNAME), notMatching: () => run(copyOf(PROBE, 'other'), ['open', HOSTNAME]),
  },
  {
    name: 'matchBinaries NotIn',
    selectors: (bin) => [{ matchBinaries: [{ operator: 'NotIn', values: [bin] }], matchArgs: [{ index: 1, operator: 'Equal', values: [bin + '.target'] }], matchActions: post }],
    matching: (bin) => run(copyOf(PROBE, 'other'), ['open', bin + '.target']), notMatching: (bin) => run(bin, ['open', bin + '.target']),
  },
  {
    name: 'matchBinaries Prefix',
    selectors: (bin) => [{ matchBinaries: [{ operator: 'Prefix', values: [bin.slice(0, -2)] }], matchArgs: [{ index: 1, operator: 'Equal', values: [bin + '.target'] }], matchActions: post }],
    matching: (bin) => run(bin, ['open', bin + '.target']), notMatching: (bin) => run('/usr/bin/cat', [bin + '.target']),
  },
  {
    name: 'matchBinaries NotPrefix',
    selectors: (bin) => [{ matchBinaries: [{ operator: 'NotPrefix', values: [scratch] }], matchArgs: [{ index: 1, operator: 'Equal', values: [bin + '.target'] }], matchActions: post }],
    matching: (bin) => run('/usr/bin/cat', [bin + '.target']), notMatching: (bin) => run(bin, ['open', bin + '.target']),
  },
  {
    name: 'matchBinaries Postfix',
    selectors: (bin) => [{ matchBinaries: [{ operator: 'Postfix', values: [tail(bin)] }], matchArgs: [{ index: 1, operator: 'Equal', values: [bin + '.target'] }], matchActions: post }],
    matching: (bin) => run(bin, ['open', bin + '.target']), notMatching: (bin) => run('/usr/bin/cat', [bin + '.target']),
  },
  {
    name: 'matchBinaries NotPostfix',
    selectors: (bin) => [{ matchBinaries: [{ operator: 'NotPostfix', values: [tail(bin)] }], matchArgs: [{ index: 1, operator: 'Equal', values: [bin + '.target'] }], matchActions: post }],
    matching: (bin) => run('/usr/bin/cat', [bin + '.target']), notMatching: (bin) => run(bin, ['open', bin + '.target']),
  },
  {
    name: 'matchBinaries followChildren',
    binary: BUSYBOX,
    selectors: (bin) => [{ matchBinaries: [{ operator: 'In', values: [bin], followChildren: true }], matchArgs: [{ index: 1, operator: 'Equal', values: [bin + '.target'] }], matchActions: post }],
    matching: (bin) => runTree(bin, `/usr/bin/cat ${bin}.target`),
    notMatching: (bin) => run('/usr/bin/cat', [bin + '.target']),
  },
  {
    name: 'matchNamespaces Pid In host_ns',
    selectors: (bin) => [{ ...scope(bin), matchNamespaces: [{ namespace: 'Pid', operator: 'In', values: ['host_ns'] }], matchActions: post }],
    matching: open(HOSTNAME), notMatching: (bin) => runUnshared(['--pid', '--fork'], bin),
  },
  {
    name: 'matchNamespaces Pid NotIn host_ns',
    selectors: (bin) => [{ ...scope(bin), matchNamespaces: [{ namespace: 'Pid', operator: 'NotIn', values: ['host_ns'] }], matchActions: post }],
    matching: (bin) => runUnshared(['--pid', '--fork'], bin), notMatching: open(HOSTNAME),
  },
  {
    name: 'matchNamespaces Mnt and Uts',
    selectors: (bin) => [{ ...scope(bin), matchNamespaces: [{ namespace: 'Mnt', operator: 'NotIn', values: ['host_ns'] }, { namespace: 'Uts', operator: 'In', values: ['host_ns'] }], matchActions: post }],
    matching: (bin) => runUnshared(['--mount'], bin), notMatching: (bin) => runUnshared(['--mount', '--uts'], bin),
  },
  {
    name: 'matchNamespaces Net NotIn host_ns',
    selectors: (bin) => [{ ...scope(bin), matchNamespaces: [{ namespace: 'Net', operator: 'NotIn', values: ['host_ns'] }], matchActions: post }],
    matching: (bin) => runUnshared(['--net'], bin), notMatching: open(HOSTNAME),
  },
  {
    name: 'matchNamespaceChanges In Uts',
    selectors: (bin) => [{ ...scope(bin), matchNamespaceChanges: [{ operator: 'In', values: ['Uts'] }], matchActions: post }],
    matching: (bin) => run(bin, ['unshare-open', HOSTNAME]), notMatching: open(HOSTNAME),
  },
  {
    name: 'matchNamespaceChanges NotIn Uts',
    selectors: (bin) => [{ ...scope(bin), matchNamespaceChanges: [{ operator: 'NotIn', values: ['Uts'] }], matchActions: post }],
    matching: open(HOSTNAME), notMatching: (bin) => run(bin, ['unshare-open', HOSTNAME]),
  },
  {
    name: 'matchCapabilities Effective In CAP_SYS_ADMIN',
    selectors: (bin) => [{ ...scope(bin), matchCapabilities: [{ type: 'Effective', operator: 'In', values: ['CAP_SYS_ADMIN'] }], matchActions: post }],
    matching: open(HOSTNAME), notMatching: setpriv(dropSysAdmin),
  },
  {
    name: 'matchCapabilities Effective NotIn CAP_SYS_ADMIN',
    selectors: (bin) => [{ ...scope(bin), matchCapabilities: [{ type: 'Effective', operator: 'NotIn', values: ['CAP_SYS_ADMIN'] }], matchActions: post }],
    matching: setpriv(dropSysAdmin), notMatching: open(HOSTNAME),
  },
  {
    name: 'matchCapabilities Permitted In CAP_SYS_ADMIN',
    selectors: (bin) => [{ ...scope(bin), matchCapabilities: [{ type: 'Permitted', operator: 'In', values: ['CAP_SYS_ADMIN'] }], matchActions: post }],
    matching: open(HOSTNAME), notMatching: setpriv(dropSysAdmin),
  },
  {
    name: 'matchCapabilities Inheritable In CAP_NET_RAW',
    selectors: (bin) => [{ ...scope(bin), matchCapabilities: [{ type: 'Inheritable', operator: 'In', values: ['CAP_NET_RAW'] }], matchActions: post }],
    matching: setpriv(['--inh-caps=+net_raw']), notMatching: setpriv(['--inh-caps=-all']),
  },
  {
    name: 'matchCapabilityChanges Effective In CAP_SYS_ADMIN',
    selectors: (bin) => [{ ...scope(bin), matchCapabilityChanges: [{ type: 'Effective', operator: 'In', values: ['CAP_SYS_ADMIN'] }], matchActions: post }],
    matching: (bin) => run(bin, ['dropcap-open', HOSTNAME]), notMatching: open(HOSTNAME),
  },
  {
    name: 'matchCapabilityChanges Effective NotIn CAP_SYS_ADMIN',
    selectors: (bin) => [{ ...scope(bin), matchCapabilityChanges: [{ type: 'Effective', operator: 'NotIn', values: ['CAP_SYS_ADMIN'] }], matchActions: post }],
    matching: open(HOSTNAME), notMatching: (bin) => run(bin, ['dropcap-open', HOSTNAME]),
  },
  {
    name: 'matchPIDs isNamespacePID In 1',
    selectors: (bin) => [{ ...scope(bin), matchPIDs: [{ operator: 'In', values: [1], isNamespacePID: true }], matchActions: post }],
    matching: (bin) => runUnshared(['--pid', '--fork'], bin), notMatching: open(HOSTNAME),
  },
  {
    name: 'matchPIDs NotIn 1 (host pids)',
    selectors: (bin) => [{ ...scope(bin), matchPIDs: [{ operator: 'NotIn', values: [1], isNamespacePID: true }], matchActions: post }],
    matching: open(HOSTNAME), notMatching: (bin) => runUnshared(['--pid', '--fork'], bin),
  },
];

/** A copy of busybox running `script` in its shell, which forks the command as a child. */
function runTree(shell: string, script: string): Promise<RunResult> {
  return run(shell, ['sh', '-c', `${script}; true`]);
}

/** The binary run by unshare with the given flags; its own pid is the one that opens. */
function runUnshared(flags: string[], bin: string): Promise<RunResult> {
  return run('unshare', [...flags, bin, 'open', HOSTNAME]);
}

/** Pids a run's events may carry: the process itself and, through unshare/shells, its descendants. */
async function descendantsOf(result: RunResult): Promise<number[]> {
  await exitsSeen(h, [result.pid]);
  const pids = new Set([result.pid]);
  for (const e of h.events) {
    const p = e.event.process_exec?.process;
    if (!p) continue;
    const parent = e.event.process_exec?.parent;
    if (parent && pids.has(parent.pid.value)) pids.add(p.pid.value);
  }
  return [...pids];
}

for (const c of cases) {
  test(c.name, async () => {
    const bin = copyOf(c.binary ?? PROBE, 'case');
    fs.writeFileSync(bin + '.target', 'target\n');
    const name = `selector-case-${++policyCount}`;
    const [program] = compile(policyYaml(name, { kprobes: [openatHook(c.selectors(bin))] }));
    await h.sensor.loadPolicy(program!);
    try {
      const yes = await c.matching(bin);
      const no = await c.notMatching(bin);
      const matched = await policyEvents(h, name, await descendantsOf(yes));
      const unmatched = await policyEvents(h, name, await descendantsOf(no));
      assert.ok(matched.length > 0, `expected a policy event for the matching run (${yes.stdout}${yes.stderr})`);
      assert.equal(unmatched.length, 0, `no policy event for the non-matching run: ${JSON.stringify(unmatched[0]?.args)}`);
      assert.equal(matched[0]!.function_name, 'sys_openat');
      assert.equal(matched[0]!.policy_name, name);
    } finally {
      await h.sensor.unloadPolicy(name);
    }
  });
}

test('matchPIDs In and followForks, on a process started before the policy', async () => {
  const shell = copyOf(BUSYBOX, 'waiter');
  const target = scratchFile('forks-target');
  // Waits for a line, then opens the target itself (exec keeps the pid) and through a child.
  const child = spawn(shell, ['sh', '-c', `read x; /usr/bin/cat ${target} >/dev/null; exec ${PROBE} open ${target}`], { stdio: ['pipe', 'pipe', 'inherit'] });
  const pid = child.pid!;
  const selectors = (followForks: boolean) => [{ matchPIDs: [{ operator: 'In', values: [pid], followForks }], matchArgs: [{ index: 1, operator: 'Equal', values: [target] }], matchActions: post }];
  const [direct] = compile(policyYaml('pids-direct', { kprobes: [openatHook(selectors(false))] }));
  const [follow] = compile(policyYaml('pids-follow', { kprobes: [openatHook(selectors(true))] }));
  await h.sensor.loadPolicy(direct!);
  await h.sensor.loadPolicy(follow!);
  try {
    await new Promise((r) => setTimeout(r, 100));
    child.stdin.end('go\n');
    await exited(child);
    await exitsSeen(h, [pid]);
    const catPid = h.events.find((e) => e.event.process_exec?.parent?.pid.value === pid && e.event.process_exec.process.binary === '/usr/bin/cat')?.event.process_exec?.process.pid.value;
    assert.ok(catPid, 'the child cat ran');
    const directOwn = await policyEvents(h, 'pids-direct', [pid]);
    const directChild = await policyEvents(h, 'pids-direct', [catPid]);
    const followChild = await policyEvents(h, 'pids-follow', [catPid]);
    assert.ok(directOwn.length > 0, 'In matches the pid itself');
    assert.equal(directChild.length, 0, 'without followForks a child does not match');
    assert.ok(followChild.length > 0, 'with followForks a child matches');
  } finally {
    await h.sensor.unloadPolicy('pids-direct');
    await h.sensor.unloadPolicy('pids-follow');
  }
});

test('actions: Sigkill, Signal, NoPost, rateLimit', async () => {
  const killBin = copyOf(PROBE, 'kill');
  const signalBin = copyOf(PROBE, 'signal');
  const silentBin = copyOf(PROBE, 'silent');
  const limitedShell = copyOf(BUSYBOX, 'limited');
  const target = scratchFile('actions-target');
  const sel = (bin: string, matchActions: Record<string, unknown>[]) => ({ ...scope(bin), matchArgs: [{ index: 1, operator: 'Equal', values: [target] }], matchActions });
  const [program] = compile(policyYaml('actions', {
    kprobes: [openatHook([
      sel(killBin, [{ action: 'Sigkill' }]),
      sel(signalBin, [{ action: 'Signal', argSig: 10 }]),
      sel(silentBin, [{ action: 'Sigkill' }, { action: 'NoPost' }]),
      sel(limitedShell, [{ action: 'Post', rateLimit: '1m' }]),
    ])],
  }));
  await h.sensor.loadPolicy(program!);
  try {
    const killed = await run(killBin, ['open', target]);
    assert.equal(killed.signal, 'SIGKILL');
    assert.equal(killed.stdout, '', 'never returned to user space from the open');
    const signalled = await run(signalBin, ['open', target]);
    assert.equal(signalled.signal, 'SIGUSR1');
    const silent = await run(silentBin, ['open', target]);
    assert.equal(silent.signal, 'SIGKILL');
    const limited = await run(limitedShell, ['sh', '-c', `exec 3<${target}; exec 4<${target}; exec 5<${target}; echo done`]);
    assert.equal(limited.stdout, 'done\n');

    const [killEvent] = await policyEvents(h, 'actions', [killed.pid]);
    assert.equal(killEvent?.action, 3, 'KPROBE_ACTION_SIGKILL');
    assert.equal(killEvent?.args[1].string_arg, target);
    assert.equal((await policyEvents(h, 'actions', [signalled.pid]))[0]?.action, 10, 'KPROBE_ACTION_SIGNAL');
    assert.equal((await policyEvents(h, 'actions', [silent.pid])).length, 0, 'NoPost: killed without an event');
    assert.equal((await policyEvents(h, 'actions', [limited.pid])).length, 1, 'rateLimit: three opens, one event');
    const stats = h.sensor.policyStats('actions');
    assert.ok(stats.actionsApplied >= 3, `actions applied: ${JSON.stringify(stats)}`);
    assert.ok(stats.rateLimited >= 2, `rate limited: ${JSON.stringify(stats)}`);
  } finally {
    await h.sensor.unloadPolicy('actions');
  }
});

test('a tracepoint hook reads typed fields from the tracepoint format', async () => {
  const bin = copyOf(BUSYBOX, 'killer');
  const [program] = compile(policyYaml('tp-kill', {
    tracepoints: [{
      subsystem: 'syscalls', event: 'sys_enter_kill',
      args: [{ index: 5, type: 'int' }, { index: 6, type: 'int' }],
      selectors: [{ ...scope(bin), matchArgs: [{ index: 6, operator: 'Equal', values: ['0'] }], matchActions: post }],
    }],
  }));
  await h.sensor.loadPolicy(program!);
  try {
    const yes = await run(bin, ['kill', '-0', String(process.pid)]);
    const no = await run(bin, ['kill', '-CONT', String(process.pid)]);
    const [event] = await policyEvents(h, 'tp-kill', [yes.pid]);
    assert.ok(event, 'sig 0 matches');
    assert.equal(event.subsys, 'syscalls');
    assert.equal(event.event, 'sys_enter_kill');
    assert.equal(event.args[0].int_arg, process.pid);
    assert.equal((await policyEvents(h, 'tp-kill', [no.pid])).length, 0, 'SIGCONT does not');
  } finally {
    await h.sensor.unloadPolicy('tp-kill');
  }
});

test('a uprobe hook fires on the function of that binary only', async () => {
  const bin = copyOf(PROBE, 'uprobed');
  const [program] = compile(policyYaml('uprobe-open', {
    uprobes: [{ path: bin, symbols: ['open_and_report'], selectors: [{ matchActions: post }] }],
  }));
  await h.sensor.loadPolicy(program!);
  try {
    const yes = await run(bin, ['open', HOSTNAME]);
    const no = await run(PROBE, ['open', HOSTNAME]);
    const [event] = await policyEvents(h, 'uprobe-open', [yes.pid]);
    assert.ok(event, 'uprobe event');
    assert.equal(event.path, bin);
    assert.equal(event.symbol, 'open_and_report');
    assert.equal((await policyEvents(h, 'uprobe-open', [no.pid])).length, 0);
  } finally {
    await h.sensor.unloadPolicy('uprobe-open');
  }
});

test("a uprobe on a /procRoot/ path (Tetragon's mount of the host's /proc) attaches through /proc/ here and reports the policy's path", async () => {
  assert.equal(fs.existsSync('/procRoot'), false, 'this machine has no /procRoot');
  const bin = copyOf(PROBE, 'uprobed-procroot');
  const named = `/procRoot/self/root${bin}`;
  const [program] = compile(policyYaml('uprobe-procroot', {
    uprobes: [{ path: named, symbols: ['open_and_report'], selectors: [{ matchActions: post }] }],
  }));
  await h.sensor.loadPolicy(program!);
  try {
    const yes = await run(bin, ['open', HOSTNAME]);
    const [event] = await policyEvents(h, 'uprobe-procroot', [yes.pid]);
    assert.ok(event, 'uprobe event');
    assert.equal(event.path, named);
    assert.equal(event.symbol, 'open_and_report');
  } finally {
    await h.sensor.unloadPolicy('uprobe-procroot');
  }
});

test('matchBinaries judges each exec anew: a process\'s kept verdict does not outlive its executable', async () => {
  // One process opens the file three times as a shell (verdict kept after the first), then execs the probe, which opens it once.
  const sh = copyOf(BUSYBOX, 'sh');
  const probe = copyOf(PROBE, 'exec-target');
  const file = scratchFile('judged-per-exec');
  const script = `read x < ${file}; read x < ${file}; read x < ${file}; exec ${probe} open ${file}`;
  const opensOfFile = (events: PolicyEvent[]): PolicyEvent[] => events.filter((e) => e.args[1]?.string_arg === file);
  for (const [judged, expected] of [[probe, 1], [sh, 3]] as const) {
    const name = `per-exec-${path.basename(judged)}`;
    await withPolicy(h, policyYaml(name, { kprobes: [openatHook([{ matchBinaries: [{ operator: 'In', values: [judged] }], matchActions: post }])] }), async () => {
      const r = await run(sh, ['sh', '-c', script]);
      assert.equal(r.code, 0, r.stderr);
      const events = opensOfFile(await policyEvents(h, name, [r.pid]));
      assert.equal(events.length, expected, `${path.basename(judged)}: ${JSON.stringify(events.map((e) => e.process.binary))}`);
      assert.ok(events.every((e) => e.process.binary === judged));
    });
  }
});
