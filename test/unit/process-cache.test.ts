/** The process cache's bookkeeping, driven with synthetic kernel records. */
import test from 'node:test';
import assert from 'node:assert/strict';
import { ProcessCache } from '../../services/sensor/process-cache.js';
import { fixedFormOf, momentFields } from '../../services/lib/process-forms.js';
import { BootClock } from '../../services/sensor/identity.js';
import { NAMESPACE_NAMES, type KernelProcess, type NamespaceName } from '../../services/sensor/kernel/records.js';
import type { ContainerInfo, ContainerRegistry } from '../../services/sensor/containers/registry.js';

const ns = Object.fromEntries(NAMESPACE_NAMES.map((n) => [n, 4026531800])) as Record<NamespaceName, number>;
let clockNs = 1_000_000_000n;

function proc(pid: number, ppid: number): KernelProcess {
  return {
    pid, tid: pid, ppid, nspid: pid, startBoottime: clockNs, cgroupId: 1n, flags: 0,
    creds: { uid: 0, euid: 0, suid: 0, fsuid: 0, gid: 0, egid: 0, sgid: 0, fsgid: 0, auid: 1000, securebits: 0, capEffective: 1n << 21n, capPermitted: 1n << 21n, capInheritable: 0n },
    ns, comm: 'x', cgroupName: '', cgroupV1Name: '',
  };
}
const exec = (pid: number, ppid: number, argv = ['/bin/x']) => ({ kind: 1 as const, ktime: ++clockNs, proc: proc(pid, ppid), oldPid: pid, argv, exe: '/bin/x', cwd: '/' });
const fork = (pid: number, ppid: number) => ({ kind: 2 as const, ktime: ++clockNs, proc: proc(pid, ppid) });
const exit = (pid: number, status = 0) => ({ kind: 3 as const, ktime: ++clockNs, pid, tid: pid, ppid: 0, exitStatus: status, startBoottime: 0n });

const newCache = (maxEntries?: number) => new ProcessCache({ nodeName: 'n', clock: new BootClock(), hostNamespaces: ns, ...(maxEntries && { maxEntries }) });

test('a parent stays cached until its last child exits', () => {
  const cache = newCache();
  const parent = cache.onExec(exec(10, 1)).process;
  cache.onFork(fork(11, 10));
  const child = cache.onExec(exec(11, 10)).process;
  assert.equal(child.parent_exec_id, parent.exec_id);
  const parentExit = cache.onExit(exit(10));
  assert.equal(parentExit.process.refcnt, 1, 'one child still refers to it');
  assert.ok(cache.lookupExecId(parent.exec_id), 'kept for the child');
  const childExit = cache.onExit(exit(11, 9));
  assert.equal(childExit.parent?.exec_id, parent.exec_id, 'exit names the exited parent');
  assert.equal(childExit.signal, 'SIGKILL');
  assert.equal(cache.lookupExecId(parent.exec_id), undefined);
  assert.equal(cache.stats().size, 0);
});

test('a snapshot finds its fixed form while the cache holds the process, and differs from it in moment fields only', () => {
  const cache = newCache(2);
  const { process } = cache.onExec(exec(40, 1));
  const fixed = fixedFormOf(process);
  assert.ok(fixed && fixed !== process);
  assert.deepEqual(momentFields(process, fixed), { refcnt: 1 });
  const policy = cache.processOf(40, 41).process;
  assert.equal(fixedFormOf(policy), fixed);
  assert.deepEqual(momentFields(policy, fixed), { refcnt: 1, tid: { value: 41 } });
  cache.onExit(exit(40));
  assert.equal(fixedFormOf(process), undefined, 'released with its entry');
  const evicted = cache.onExec(exec(42, 1)).process;
  cache.onExec(exec(43, 1));
  cache.onExec(exec(44, 1));
  assert.equal(fixedFormOf(evicted), undefined, 'released when evicted');
  const kept = cache.onExec(exec(45, 1)).process;
  assert.ok(fixedFormOf(kept));
  cache.close();
  assert.equal(fixedFormOf(kept), undefined, 'a closed cache serves no fixed form');
});

test('cached processes share their user ids\' objects, and a main thread\'s tid is its pid\'s', () => {
  const cache = newCache();
  const [a, b] = [cache.onExec(exec(50, 1)).process, cache.onExec(exec(51, 1)).process];
  assert.ok(a.uid === b.uid && a.auid === b.auid, 'one uid and one auid object for both');
  assert.deepEqual([a.uid, a.auid], [{ value: 0 }, { value: 1000 }]);
  assert.equal(a.tid, a.pid);
  assert.throws(() => { (a.uid as { value: number }).value = 5; }, TypeError, 'shared, so frozen');
  cache.close();
});

test('exec replaces the clone entry; argument quoting; flags', () => {
  const cache = newCache();
  cache.onExec(exec(20, 1));
  cache.onFork(fork(21, 20));
  const e = cache.onExec(exec(21, 20, ['nginx', '-g', 'daemon off;', '']));
  assert.equal(e.process.arguments, '-g "daemon off;" ""');
  assert.equal(e.process.flags, 'execve rootcwd');
  assert.equal(cache.stats().size, 2, 'clone entry retired');
});

test('exit status and signal decoding', () => {
  const cache = newCache();
  cache.onExec(exec(30, 1));
  const e = cache.onExit(exit(30, 3 << 8));
  assert.equal(e.status, 3);
  assert.equal(e.signal, '');
});

test('an unknown process still yields an exit event and is counted as a miss', () => {
  const cache = newCache();
  const e = cache.onExit(exit(40));
  assert.equal(e.process.pid.value, 40);
  assert.equal(e.process.flags, 'miss');
  assert.equal(cache.stats().misses, 1);
  assert.equal(cache.stats().size, 0);
});

test('the cache is bounded and counts evictions', () => {
  const cache = newCache(100);
  for (let pid = 100; pid < 400; pid++) cache.onExec(exec(pid, 1));
  assert.equal(cache.stats().size, 100);
  assert.equal(cache.stats().evicted, 200);
});

test("a child that execs after its parent died still names the parent that forked it", () => {
  const cache = newCache();
  const parent = cache.onExec(exec(50, 1)).process;
  cache.onFork(fork(51, 50));
  cache.onExit(exit(50, 9));
  const child = cache.onExec(exec(51, 1)); // re-parented to pid 1 before its exec
  assert.equal(child.process.parent_exec_id, parent.exec_id);
  assert.equal(child.parent?.exec_id, parent.exec_id);
  cache.onExit(exit(51));
  assert.equal(cache.stats().size, 0);
});

test('snapshots taken while a container\'s metadata is awaited carry a late pod, for exec events and for policy events alike', () => {
  const container: ContainerInfo = { ref: { id: 'c'.repeat(64), runtime: 'containerd' }, cgroupId: 1n, cgroupPath: '/kubepods/podx/c', awaitingMetadata: true };
  const registry = { ofCgroup: () => container } as unknown as ContainerRegistry;
  const cache = new ProcessCache({ nodeName: 'n', clock: new BootClock(), hostNamespaces: ns, containers: registry });
  const { process: execd } = cache.onExec(exec(40, 1));
  const { process: inPolicyEvent } = cache.processOf(40, 41);
  const lates = [cache.latePod(execd), cache.latePod(inPolicyEvent)];
  assert.ok(lates.every((l) => l !== undefined && !l.settled() && l.pod() === undefined));
  container.pod = { containerId: container.ref.id, namespace: 'default', podName: 'web', containerName: 'main', image: 'img', labels: {} };
  container.awaitingMetadata = false;
  assert.ok(lates.every((l) => l!.settled() && l!.pod()?.name === 'web'));
  assert.equal(cache.processOf(40, 40).process.pod?.name, 'web', 'once known, snapshots carry the pod themselves');
  assert.equal(cache.latePod(cache.processOf(40, 40).process), undefined);
});

test('processes with equal capabilities, namespaces and credentials share one frozen copy of each', () => {
  const c = newCache();
  const a = c.onExec(exec(500, 1)).process;
  const b = c.onExec(exec(501, 1)).process;
  for (const field of ['cap', 'ns', 'process_credentials'] as const) {
    assert.equal(a[field], b[field], field);
    assert.ok(Object.isFrozen(a[field]) && Object.isFrozen(Object.values(a[field]!)[0]), `${field} is frozen, deeply`);
  }
  const other = proc(502, 1);
  other.creds = { ...other.creds, euid: 1000, capEffective: 0n };
  const d = c.onExec({ ...exec(502, 1), proc: other }).process;
  assert.notEqual(d.cap, a.cap);
  assert.notEqual(d.process_credentials, a.process_credentials);
  assert.equal(d.process_credentials!.euid!.value, 1000);
  assert.deepEqual(d.cap!.effective, []);
  assert.equal(d.ns, a.ns);
  // Back to the first values after others: the first copies again, not the last ones asked for.
  const e = c.onExec(exec(503, 1)).process;
  assert.equal(e.cap, a.cap);
  assert.equal(e.process_credentials, a.process_credentials);
  const otherNs = proc(504, 1);
  otherNs.ns = { ...otherNs.ns, net: otherNs.ns.net + 1 };
  const f = c.onExec({ ...exec(504, 1), proc: otherNs }).process;
  assert.notEqual(f.ns, a.ns);
  assert.equal(f.ns!.net!.is_host, false);
  assert.equal(c.onExec(exec(505, 1)).process.ns, a.ns);
});
