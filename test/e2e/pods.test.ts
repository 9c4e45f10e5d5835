/**
 * Containers and pods on real containerd + runc (images built here from
 * busybox-static): the seed's privileged-pod scenario with the shipped policy,
 * namespaced and pod-selected policies, pod metadata in events. The sensor runs
 * in this process so its caches can be inspected; containers run in cgroups
 * laid out as Kubernetes' (/kubepods/besteffort/pod<uid>/<id>) and carry the
 * labels CRI would give them. Every enforcing policy is narrowed to pods
 * labelled with this run's id, so nothing else on the machine is touched.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { LocalBus, type EventEnvelope } from '../../services/lib/bus.js';
import { repoRoot } from '../../services/lib/paths.js';
import { toProtoJson } from '../../services/lib/tetragon-proto.js';
import { VERSION } from '../../services/lib/version.js';
import { Sensor } from '../../services/sensor/index.js';
import { PublicApiServer } from '../../services/api/index.js';
import { openContainerSources, type ContainerSources } from '../../services/sensor/index.js';
import { formatCompact } from '../../services/cli/compact.js';
import { compile } from '../support/policy.js';
import { buildBusyboxImage, hexId, removeContainer, runContainer, startContainerd, stopContainer, type Containerd } from '../support/containerd.js';
import { waitFor } from '../support/wait.js';

const RUN = crypto.randomBytes(4).toString('hex');
const IMAGE = 'vigil.test/busybox:latest';
let ctd: Containerd;
let sources: ContainerSources;
let sensor: Sensor;
let api: PublicApiServer;
let apiPort = 0;
const events: EventEnvelope[] = [];
const started: string[] = [];

test.before(async () => {
  ctd = await startContainerd();
  await buildBusyboxImage(ctd, IMAGE);
  const bus = new LocalBus((err) => { throw err; });
  bus.subscribeEvents((e) => { events.push(e); });
  sources = await openContainerSources({ containerdSocket: ctd.socket, nodeName: 'pods-node', log: () => undefined });
  sensor = new Sensor(bus, { nodeName: 'pods-node', containers: sources.registry });
  sensor.start();
  api = new PublicApiServer(bus, { tcpAddress: 'localhost:0', unixSocket: '', version: VERSION, nodeName: 'pods-node' });
  apiPort = (await api.start()).tcpPort;
});

test.after(async () => {
  for (const id of started) await removeContainer(ctd, id).catch(() => undefined);
  await api?.stop();
  sensor?.stop();
  await sources?.close();
  await ctd?.stop();
});

/** A pod's container, labelled as CRI labels it (plus this run's label), in a Kubernetes-like cgroup. */
async function runPod(opts: { namespace: string; pod: string; container?: string; labels?: Record<string, string>; privileged?: boolean; args: string[] }) {
  const id = hexId();
  started.push(id);
  const startedAt = Date.now();
  const c = await runContainer(ctd, {
    id, image: IMAGE, args: opts.args, detach: true, privileged: opts.privileged ?? false,
    cgroupParent: `/kubepods/besteffort/pod${crypto.randomUUID()}`,
    labels: {
      'io.kubernetes.pod.name': opts.pod, 'io.kubernetes.pod.namespace': opts.namespace,
      'io.kubernetes.container.name': opts.container ?? 'main', 'vigil-run': RUN, ...opts.labels,
    },
  });
  return { ...c, startedAt };
}

const PROBE_FILE = '/proc/sys/kernel/ngroups_max';

function eventsOfContainer(id: string): EventEnvelope[] {
  return events.filter((e) => {
    const p = (e.event.process_exec ?? e.event.process_exit ?? e.event.process_kprobe) as { process?: { docker?: string } } | undefined;
    return p?.process?.docker === id.slice(0, 31);
  });
}

/**
 * The shipped seed policy, narrowed to the file this test's containers open,
 * so that it kills nothing else on the machine. Not narrowed by a podSelector:
 * a pod-scoped policy covers a container once its metadata is in (see
 * sensor/policy-tables/scope.ts), and the first process here opens the file
 * at once; the file is checked in the kernel, before any metadata.
 */
function seedPolicy(): string {
  const doc = YAML.parse(fs.readFileSync(path.join(repoRoot, 'deploy', 'policies', 'deny-privileged-pod-start.yaml'), 'utf8'));
  doc.spec.kprobes[0].selectors[0].matchArgs = [{ index: 1, operator: 'Equal', values: [PROBE_FILE] }];
  return YAML.stringify(doc);
}

test("the seed's scenario: a privileged pod's very first process is stopped at its first open, with the lines tetra prints; an unprivileged pod keeps running", async () => {
  const [program] = compile(seedPolicy());
  await sensor.loadPolicy(program!);
  try {
    // The container's own first process opens a file at once, as nginx does.
    const priv = await runPod({ namespace: 'default', pod: 'nginx-priv', container: 'nginx', privileged: true, args: ['cat', '/proc/sys/kernel/ngroups_max'] });
    const plain = await runPod({ namespace: 'default', pod: 'nginx-plain', container: 'nginx', args: ['sh', '-c', 'while true; do cat /proc/sys/kernel/ngroups_max; sleep 1; done'] });

    const exit = await waitFor('the privileged container killed', () => eventsOfContainer(priv.id).find((e) => e.event.process_exit?.signal === 'SIGKILL'), 15_000);
    const first = eventsOfContainer(priv.id).find((e) => e.event.process_exec)!.event.process_exec!;
    assert.equal(first.process.arguments, '/proc/sys/kernel/ngroups_max', "the container's first exec is its command");
    assert.equal(first.process.pod?.name, 'nginx-priv', "the container's first exec carries its pod");
    assert.equal(first.parent?.binary, '/usr/bin/containerd-shim-runc-v2', "the parent of the container's first process is the shim");
    assert.equal(exit.event.process_exit!.process.exec_id, first.process.exec_id, 'the process killed is the first one');

    const kill = eventsOfContainer(priv.id).find((e) => e.event.process_kprobe)!;
    assert.ok(kill, 'the open that was stopped is reported');
    const kprobe = kill.event.process_kprobe as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.equal(kprobe.policy_name, 'deny-privileged-pod-start');
    assert.equal(kprobe.action, 3);
    assert.equal(kprobe.process.exec_id, first.process.exec_id);
    assert.equal(kprobe.process.pod.namespace, 'default');
    assert.equal(kprobe.process.pod.name, 'nginx-priv');
    assert.equal(kprobe.process.pod.container.id, `containerd://${priv.id}`);
    assert.equal(kprobe.process.pod.container.name, 'nginx');
    assert.equal(kprobe.process.docker, priv.id.slice(0, 31));
    assert.equal(kprobe.function_name, 'fd_install');
    assert.deepEqual(kprobe.args[1], { file_arg: { path: '/proc/sys/kernel/ngroups_max' } }, 'the file the new fd names');

    // What `tetra getevents -o compact` prints for these events (the compact encoder follows tetra's, line for line): the seed's lines.
    const compactOpen = formatCompact(toProtoJson('tetragon.GetEventsResponse', kill.event))!;
    const compactExit = formatCompact(toProtoJson('tetragon.GetEventsResponse', exit.event))!;
    assert.match(compactOpen, /^📬 open {4}default\/nginx-priv \/bin\/busybox \/proc\/sys\/kernel\/ngroups_max +🛑 CAP_SYS_ADMIN$/u);
    assert.match(compactExit, /^💥 exit {4}default\/nginx-priv \/bin\/busybox \/proc\/sys\/kernel\/ngroups_max SIGKILL +🛑 CAP_SYS_ADMIN$/u);

    await waitFor('the unprivileged container past a few opens', () => (eventsOfContainer(plain.id).filter((e) => e.event.process_exec).length >= 3 ? true : undefined), 15_000);
    assert.ok(fs.existsSync(`/proc/${plain.pid}`), 'the unprivileged container keeps running');
    assert.equal(eventsOfContainer(plain.id).filter((e) => e.event.process_kprobe).length, 0);
  } finally {
    await sensor.unloadPolicy('deny-privileged-pod-start');
  }
});

test("the field study's policy, verbatim, loads; with today's matchBinaries it matches only /usr/bin/containerd-shim itself, so a privileged pod runs", async () => {
  const text = fs.readFileSync(path.join(repoRoot, 'test', 'fixtures', 'seed', 'deny-privileged-pod-start-2022.yaml'), 'utf8');
  const [program] = compile(text);
  assert.ok(program!.hooks.every((hook) => hook.kind === 'kprobe' && hook.name === 'fd_install'));
  assert.ok(program!.hooks.length >= 20, `fd_install is served by every fd-returning syscall (${program!.hooks.length})`);
  await sensor.loadPolicy(program!);
  try {
    const c = await runPod({ namespace: 'default', pod: 'nginx-priv-2022', privileged: true, args: ['sh', '-c', 'cat /proc/sys/kernel/ngroups_max; echo alive; sleep 30'] });
    await waitFor('the privileged pod past its opens', () => (fs.existsSync(c.logPath) && fs.readFileSync(c.logPath, 'utf8').includes('alive') ? true : undefined), 15_000);
    assert.ok(fs.existsSync(`/proc/${c.pid}`), 'not killed');
    assert.equal(eventsOfContainer(c.id).filter((e) => e.event.process_kprobe).length, 0);
  } finally {
    await sensor.unloadPolicy('deny-privileged-pod-start');
  }
});

test("100 new containers in a row: each one's first exec carries its pod", async () => {
  const runs = Number(process.env.VIGIL_POD_RUNS ?? 100);
  let attributed = 0;
  const misses: string[] = [];
  for (let i = 0; i < runs; i++) {
    const pod = `burst-${i}`;
    const c = await runPod({ namespace: `burst-${RUN}`, pod, args: ['true'] });
    const first = await waitFor(`the first exec of ${pod}`, () => eventsOfContainer(c.id).find((e) => e.event.process_exec), 10_000);
    if (first.event.process_exec!.process.pod?.name === pod) attributed++;
    else misses.push(pod);
    await stopContainer(ctd, c.id);
    await removeContainer(ctd, c.id);
  }
  console.log(`pods: ${attributed} of ${runs} first execs attributed; ${sensor.stats().podWait.held} events waited for their pod`);
  assert.equal(attributed, runs, `first execs without their pod: ${misses.join(' ')}`);
  assert.equal(sensor.stats().podWait.releasedWithoutPod, 0);
});

test('a namespaced policy in namespace a never touches pods in b; a podSelector picks only matching pods; later containers are covered without reload', async () => {
  const target = '/bin/busybox'; // in the image, and not opened by runc while it sets the container up
  const namespaced = compile(YAML.stringify({
    apiVersion: 'cilium.io/v1alpha1', kind: 'TracingPolicyNamespaced', metadata: { name: 'ns-a-kill', namespace: `a-${RUN}` },
    spec: { kprobes: [{ call: 'sys_openat', syscall: true, args: [{ index: 0, type: 'int' }, { index: 1, type: 'string' }], selectors: [{ matchArgs: [{ index: 1, operator: 'Equal', values: [target] }], matchActions: [{ action: 'Sigkill' }] }] }] },
  }))[0]!;
  const selected = compile(YAML.stringify({
    apiVersion: 'cilium.io/v1alpha1', kind: 'TracingPolicy', metadata: { name: 'selected-kill' },
    spec: { podSelector: { matchLabels: { app: `web-${RUN}` } }, kprobes: [{ call: 'sys_openat', syscall: true, args: [{ index: 0, type: 'int' }, { index: 1, type: 'string' }], selectors: [{ matchArgs: [{ index: 1, operator: 'Equal', values: [target] }], matchActions: [{ action: 'Sigkill' }] }] }] },
  }))[0]!;
  await sensor.loadPolicy(namespaced);
  await sensor.loadPolicy(selected);
  try {
    // Started after the policies: each waits a moment (its metadata arrives), then opens the target once.
    const script = `sleep 1; cat ${target} > /dev/null && echo survived; sleep 30`;
    const inA = await runPod({ namespace: `a-${RUN}`, pod: 'p-a', args: ['sh', '-c', script] });
    const inB = await runPod({ namespace: `b-${RUN}`, pod: 'p-b', args: ['sh', '-c', script] });
    const web = await runPod({ namespace: `c-${RUN}`, pod: 'web', labels: { app: `web-${RUN}` }, args: ['sh', '-c', script] });
    const other = await runPod({ namespace: `c-${RUN}`, pod: 'db', labels: { app: `db-${RUN}` }, args: ['sh', '-c', script] });

    // Killed: the policy reports a Sigkill for the container. Untouched: its script got past the open.
    const outcome = (c: { id: string; logPath: string }, policy: string) => waitFor(`the open of ${c.id.slice(0, 8)}`, () => {
      if (eventsOfContainer(c.id).some((e) => (e.event.process_kprobe as { policy_name?: string } | undefined)?.policy_name === policy)) return 'killed';
      return fs.existsSync(c.logPath) && fs.readFileSync(c.logPath, 'utf8').includes('survived') ? 'survived' : undefined;
    }, 15_000).catch((err: Error) => {
      const kp = events.map((e) => e.event.process_kprobe as { policy_name?: string; process?: { binary?: string; pod?: { name?: string } } } | undefined)
        .filter((k) => k !== undefined).map((k) => `${k.policy_name}:${k.process?.pod?.name ?? '-'}:${k.process?.binary}`);
      throw new Error(`${err.message}; policy events: ${kp.join(' ')}; log: ${fs.existsSync(c.logPath) ? fs.readFileSync(c.logPath, 'utf8') : '(none)'}`);
    });
    assert.equal(await outcome(inA, 'ns-a-kill'), 'killed', 'namespace a');
    assert.equal(await outcome(inB, 'ns-a-kill'), 'survived', 'namespace b');
    assert.equal(await outcome(web, 'selected-kill'), 'killed', 'podSelector app=web');
    assert.equal(await outcome(other, 'selected-kill'), 'survived', 'podSelector: another app');
    assert.ok(!fs.readFileSync(inA.logPath, 'utf8').includes('survived'));
    assert.ok(sensor.policyScope('ns-a-kill').includes(sources.registry.container(inA.id)!.cgroupId));
  } finally {
    await sensor.unloadPolicy('ns-a-kill');
    await sensor.unloadPolicy('selected-kill');
  }
});

test('pod metadata is in events within 1 s of the start; a gone container leaves the caches; GetEvents filters by namespace and pod', async () => {
  const cli = spawn(process.execPath, [path.join(repoRoot, 'bin', 'vigil.js'), 'events', '-o', 'compact', '--color', 'never', '--server', `localhost:${apiPort}`, '--namespace', `meta-${RUN}`, '--pod', '^meta-pod$'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let compact = '';
  cli.stdout.on('data', (d: Buffer) => { compact += d.toString(); });
  await new Promise((r) => setTimeout(r, 700));
  const c = await runPod({ namespace: `meta-${RUN}`, pod: 'meta-pod', args: ['sh', '-c', 'cat /etc/hostname; sleep 30'] });
  await runPod({ namespace: `meta-${RUN}`, pod: 'other-pod', args: ['sh', '-c', 'cat /etc/hostname; sleep 30'] });
  const withPod = await waitFor('an event of the container with its pod', () => eventsOfContainer(c.id).find((e) => e.event.process_exec?.process.pod?.name === 'meta-pod'), 5_000);
  const eventMs = withPod.event.time.seconds * 1000 + withPod.event.time.nanos / 1e6;
  assert.ok(eventMs - c.startedAt < 1000, `pod metadata ${eventMs - c.startedAt} ms after the start`);

  const lines = await waitFor('compact lines of meta-pod only', () => (compact.includes(`meta-${RUN}/meta-pod`) ? compact.split('\n') : undefined), 10_000);
  cli.kill('SIGINT');
  assert.ok(lines.every((l) => l === '' || l.includes(`meta-${RUN}/meta-pod`)), `only meta-pod: ${lines.join('\n')}`);

  assert.ok(sources.registry.container(c.id), 'cached while it runs');
  await stopContainer(ctd, c.id);
  await removeContainer(ctd, c.id);
  await waitFor('the container dropped from the registry', () => (sources.registry.container(c.id) ? undefined : true), 10_000);
});
