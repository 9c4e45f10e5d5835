/**
 * Pod metadata from a real containerd (Debian's containerd 1.6 + runc, a
 * private instance per test file: test/support/containerd.ts) running
 * containers of a locally built busybox image with Kubernetes' labels and
 * cgroup paths. These tests fail, never skip, when containerd cannot run.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { ContainerdMetadata, type PodInfo } from '../../services/sensor/containers/containerd.js';
import {
  buildBusyboxImage, execInContainer, hexId, removeContainer, runContainer, startContainerd, stopContainer,
  type Containerd, type RunOptions, type RunningContainer,
} from '../support/containerd.js';
import { waitFor } from '../support/wait.js';

const IMAGE = 'docker.io/vigil/busybox:e2e';
const CAP_SYS_ADMIN = 21n;
const quiet = (): void => {};

let ctd: Containerd;
let md: ContainerdMetadata;
let logs: string[] = [];
/** Every onChange call of `md`, with when it came. */
const changes: { id: string; info: PodInfo | undefined; at: number }[] = [];

before(async () => {
  let t0 = performance.now();
  ctd = await startContainerd();
  const startMs = performance.now() - t0;
  t0 = performance.now();
  await buildBusyboxImage(ctd, IMAGE);
  const importMs = performance.now() - t0;
  md = await ContainerdMetadata.connect(ctd.socket, { log: (line) => logs.push(line) });
  md.onChange((id, info) => changes.push({ id, info, at: performance.now() }));
  // Diagnostics of the hook are not reported by node:test; the console is.
  console.log(`containerd ready in ${startMs.toFixed(0)} ms (${ctd.snapshotter}); image built and imported in ${importMs.toFixed(0)} ms`);
});

after(async () => {
  md?.close();
  await ctd?.stop();
});

const podLabels = {
  'io.kubernetes.pod.name': 'nginx-priv',
  'io.kubernetes.pod.namespace': 'default',
  'io.kubernetes.container.name': 'nginx',
  app: 'nginx',
};

async function run(opts: Omit<RunOptions, 'image' | 'detach' | 'args'> & { args?: string[] }): Promise<{ c: RunningContainer; startedAt: number; startMs: number }> {
  const t0 = performance.now();
  const c = await runContainer(ctd, { image: IMAGE, args: ['sleep', '3600'], detach: true, ...opts });
  const startedAt = performance.now();
  return { c, startedAt, startMs: startedAt - t0 };
}

function procStatus(pid: number): Record<string, string> {
  return Object.fromEntries(fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').filter(Boolean)
    .map((line) => { const i = line.indexOf(':'); return [line.slice(0, i), line.slice(i + 1).trim()]; }));
}

const capEff = (pid: number): bigint => BigInt(`0x${procStatus(pid).CapEff}`);

test('a Kubernetes-labelled container: metadata within 1 s, cgroup path, shim parent, gone after removal', async (t) => {
  const id = hexId();
  const podUid = crypto.randomUUID();
  const cgroupParent = `/kubepods/besteffort/pod${podUid}`;
  const { c, startedAt, startMs } = await run({ id, privileged: true, labels: podLabels, cgroupParent });

  const seen = await waitFor('the container in ContainerdMetadata', () => changes.find((ch) => ch.id === id && ch.info !== undefined), 5_000);
  const latencyMs = Math.max(0, seen.at - startedAt);
  t.diagnostic(`container started in ${startMs.toFixed(0)} ms; metadata ${latencyMs.toFixed(0)} ms after the start returned (${(seen.at - startedAt + startMs).toFixed(0)} ms after ctr run began)`);
  assert.ok(latencyMs < 1000, `metadata took ${latencyMs.toFixed(0)} ms`);

  const info = md.lookup(id);
  assert.ok(info);
  const { labels, createdAt, ...names } = info;
  assert.deepEqual(names, {
    containerId: id, namespace: 'default', podName: 'nginx-priv', containerName: 'nginx', image: IMAGE, containerdNamespace: ctd.namespace,
  });
  // The other labels; containerd's client adds its own (io.containerd.image.config.stop-signal).
  assert.deepEqual(Object.fromEntries(Object.entries(labels).filter(([key]) => !key.startsWith('io.containerd.'))), { app: 'nginx' });
  assert.ok(createdAt && Math.abs(createdAt.getTime() - Date.now()) < 60_000, `createdAt ${String(createdAt)}`);
  assert.equal(await md.resolve(id), info, 'resolve answers from the cache');

  // The host's view of the container's init process.
  const cgroupLines = fs.readFileSync(`/proc/${c.pid}/cgroup`, 'utf8').split('\n').filter(Boolean);
  assert.ok(cgroupLines.length > 0);
  for (const line of cgroupLines) assert.ok(line.endsWith(`:${cgroupParent}/${id}`), line);
  const ppid = Number(procStatus(c.pid).PPid);
  assert.equal(fs.readlinkSync(`/proc/${ppid}/exe`), '/usr/bin/containerd-shim-runc-v2');
  assert.equal((await execInContainer(ctd, id, ['id', '-u'])).trim(), '0');

  // Stop and remove: the exit reports it gone; nothing comes back with the delete.
  await stopContainer(ctd, id);
  await removeContainer(ctd, id);
  await waitFor('the container reported gone', () => changes.find((ch) => ch.id === id && ch.info === undefined), 5_000);
  assert.equal(md.lookup(id), undefined);
  assert.equal(await md.resolve(id), undefined, 'containerd no longer has it either');
  assert.deepEqual(changes.filter((ch) => ch.id === id).map((ch) => ch.info === undefined), [false, true]);
});

test('CAP_SYS_ADMIN: in a privileged container\'s CapEff, not in an unprivileged one\'s', async () => {
  const priv = await run({ id: hexId(), privileged: true, labels: podLabels });
  const plain = await run({ id: hexId() });
  try {
    assert.equal((capEff(priv.c.pid) >> CAP_SYS_ADMIN) & 1n, 1n, procStatus(priv.c.pid).CapEff);
    assert.equal((capEff(plain.c.pid) >> CAP_SYS_ADMIN) & 1n, 0n, procStatus(plain.c.pid).CapEff);
    assert.equal(procStatus(priv.c.pid).NoNewPrivs, '0', '--allow-new-privs');
  } finally {
    for (const { c } of [priv, plain]) {
      await stopContainer(ctd, c.id);
      await removeContainer(ctd, c.id);
    }
  }
});

test('containers without Kubernetes labels are cached with empty names; label updates are followed', async () => {
  const { c } = await run({ id: `plain-${crypto.randomBytes(4).toString('hex')}` });
  try {
    const info = await waitFor('the plain container', () => md.lookup(c.id), 5_000);
    assert.equal(info.namespace, '');
    assert.equal(info.podName, '');
    assert.equal(info.containerName, '');
    assert.equal(info.image, IMAGE);
    await ctd.ctr(['containers', 'label', c.id, 'team=blue']);
    await waitFor('the new label', () => (md.lookup(c.id)?.labels.team === 'blue' ? true : undefined), 5_000);
  } finally {
    await stopContainer(ctd, c.id);
    await removeContainer(ctd, c.id);
  }
});

test('a new client lists running containers; namespaces it does not follow stay out', async (t) => {
  const { c } = await run({ id: hexId(), labels: podLabels });
  const other = await ContainerdMetadata.connect(ctd.socket, { namespaces: ['elsewhere'], log: quiet });
  const same = await ContainerdMetadata.connect(ctd.socket, { namespaces: [ctd.namespace], log: quiet });
  t.after(async () => {
    other.close();
    same.close();
    await stopContainer(ctd, c.id);
    await removeContainer(ctd, c.id);
  });
  assert.equal(same.lookup(c.id)?.podName, 'nginx-priv', 'from the initial list');
  assert.equal(other.lookup(c.id), undefined);
  assert.equal(await other.resolve(c.id), undefined);
});

test('after containerd restarts, the client resubscribes and re-lists', async (t) => {
  const before = await run({ id: hexId(), labels: podLabels });
  await waitFor('the first container', () => md.lookup(before.c.id), 5_000);
  logs = [];
  const t0 = performance.now();
  await ctd.restart(300);
  t.diagnostic(`containerd restarted in ${(performance.now() - t0).toFixed(0)} ms (300 ms down)`);
  const afterRestart = await run({ id: hexId(), labels: { ...podLabels, 'io.kubernetes.pod.name': 'after-restart' } });
  t.after(async () => {
    for (const { c } of [before, afterRestart]) {
      await stopContainer(ctd, c.id);
      await removeContainer(ctd, c.id);
    }
  });
  const info = await waitFor('the container started after the restart', () => md.lookup(afterRestart.c.id), 10_000);
  assert.equal(info.podName, 'after-restart');
  t.diagnostic(`seen ${(performance.now() - afterRestart.startedAt).toFixed(0)} ms after its start`);
  assert.equal(md.lookup(before.c.id)?.podName, 'nginx-priv', 'the container from before the restart is still known');
  assert.ok(logs.some((line) => /event stream ended/.test(line)), logs.join('\n'));
  // Events flow again: a stop is reported.
  await stopContainer(ctd, before.c.id);
  await waitFor('the exit after the restart', () => (md.lookup(before.c.id) === undefined ? true : undefined), 5_000);
});

test('connect rejects when containerd is not there', async () => {
  await assert.rejects(ContainerdMetadata.connect(`${ctd.dir}/no-such.sock`, { log: quiet }), /no-such\.sock/);
});
