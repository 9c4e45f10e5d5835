/**
 * Vigil in Kubernetes, on a real kube-apiserver (1.20, with etcd; see
 * test/support/kube-apiserver.ts) with the real helm and kubectl:
 *
 * - `helm install` of the chart: the API server validates and stores every
 *   object it renders (the default values, and the split shape's);
 * - a `vigil agent` with the API server's kubeconfig follows the
 *   TracingPolicy objects: `kubectl apply` of the seed's policy and of each of
 *   Tetragon's library policies loads them (or refuses them, saying why in
 *   the object's status), `kubectl delete` unloads them; a spec the compiler
 *   refuses leaves the previous generation enforcing; the time from `kubectl
 *   apply` to the policy killing is measured over 20 policies;
 * - the API server ends every watch after 5-10 s (--min-request-timeout=5):
 *   the agent watches again from the resourceVersion it had, without listing;
 * - pods created through the API (spec.nodeName = this node) are what the
 *   agent's pod watcher sees, joined by pod uid with real containerd
 *   containers in that pod's cgroup.
 *
 * What a real cluster adds that cannot run here: a kubelet (the DaemonSet's
 * pod is never started, pod status is never written, so a container is found
 * by its cgroup's pod uid rather than by the status' container id), a CNI, a
 * controller-manager (no DaemonSet rollout, no garbage collection).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { repoRoot } from '../../services/lib/paths.js';
import { SensorsClient } from '../../services/cli/client.js';
import { startAgent, type AgentProcess } from '../support/agent.js';
import { counterSum, startKubeApiServer, type KubeApiServer } from '../support/kube-apiserver.js';
import { buildBusyboxImage, hexId, removeContainer, runContainer, startContainerd, type Containerd } from '../support/containerd.js';
import { openatHook, policyYaml, run, scratchFile } from '../support/policy.js';
import { waitFor } from '../support/wait.js';

const NODE = 'kube-node';
const CHART = path.join(repoRoot, 'deploy', 'helm', 'vigil');
const LIBRARY = path.resolve(repoRoot, '..', 'shared', 'tetragon-library');
const IMAGE = 'vigil.test/busybox:latest';
const RUN = crypto.randomBytes(4).toString('hex');
const log = (line: string): void => { console.log(`# kubernetes: ${line}`); };

let kube: KubeApiServer;
let ctd: Containerd;
let agent: AgentProcess | undefined;
let client: SensorsClient;
const containers: string[] = [];

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type K8sObject = Record<string, any>;

test.before(async () => {
  kube = startKubeApiServer(['--min-request-timeout=5']);
  ctd = await startContainerd();
  await buildBusyboxImage(ctd, IMAGE);
});

test.after(async () => {
  client?.close();
  await agent?.stop();
  for (const id of containers) await removeContainer(ctd, id).catch(() => undefined);
  await ctd?.stop();
  kube?.stop();
});

/** The agent, started once the CRDs are installed (by the first test's helm install). */
async function theAgent(): Promise<AgentProcess> {
  if (agent === undefined) {
    agent = await startAgent(['--node-name', NODE, '--kubeconfig', kube.kubeconfig, '--containerd-socket', ctd.socket, '--no-export-stdout']);
    client = new SensorsClient(`localhost:${agent.port}`);
  }
  return agent;
}

async function agentPolicies(): Promise<{ name: string; info: string; namespace: string }[]> {
  const res = await client.unary<{ policies?: { name: string; info: string; namespace: string }[] }>('ListTracingPolicies', {});
  return res.policies ?? [];
}

function apply(yaml: string, ...args: string[]): void {
  const file = scratchFile('object.yaml', yaml);
  const r = kube.kubectl('apply', '-f', file, ...args);
  assert.equal(r.status, 0, r.stderr);
}

/** This node's entry in an object's status, once it has handled the object's current generation. */
async function nodeStatus(kind: string, name: string, namespace?: string, timeoutMs = 30_000): Promise<K8sObject> {
  return waitFor(`${kind}/${name} handled on ${NODE}`, () => {
    const r = kube.kubectl('get', kind, name, ...(namespace ? ['-n', namespace] : []), '-o', 'json');
    if (r.status !== 0) return undefined;
    const obj = JSON.parse(r.stdout) as K8sObject;
    const entry = obj.status?.nodes?.[NODE];
    return entry !== undefined && entry.observedGeneration === obj.metadata.generation ? { ...entry, object: obj } : undefined;
  }, timeoutMs);
}

async function untilUnloaded(names: string[]): Promise<void> {
  await waitFor(`${names.join(', ')} unloaded`, async () => ((await agentPolicies()).some((p) => names.includes(p.name)) ? undefined : true), 30_000);
}

/** A policy that kills `cat` when it opens `marker`. */
function killOnOpen(name: string, marker: string, matchArgs?: Record<string, unknown>[]): string {
  return policyYaml(name, { kprobes: [openatHook([{ matchArgs: matchArgs ?? [{ index: 1, operator: 'Equal', values: [marker] }], matchActions: [{ action: 'Sigkill' }] }])] });
}

const killed = async (marker: string): Promise<boolean> => (await run('/bin/cat', [marker])).signal === 'SIGKILL';

test('helm install on the real API server: every object the chart renders is accepted, for the default values and the split shape', { timeout: 120_000 }, () => {
  for (const [release, namespace, values] of [['vigil', 'kube-system', []], ['vigil-split', 'vigil-split', ['-f', path.join(CHART, 'ci', 'split-values.yaml'), '--create-namespace']]] as const) {
    const r = kube.helm('install', release, CHART, '-n', namespace, ...values);
    assert.equal(r.status, 0, `${release}: ${r.stderr}`);
    const manifest = kube.helm('get', 'manifest', release, '-n', namespace);
    const objects = YAML.parseAllDocuments(manifest.stdout).map((d) => d.toJS() as K8sObject).filter((o) => o !== null);
    for (const o of objects) {
      const ns = o.metadata.namespace ?? namespace;
      const got = kube.kubectl('get', o.kind, o.metadata.name, '-n', ns, '-o', 'name');
      assert.equal(got.status, 0, `${release}: ${o.kind}/${o.metadata.name} not stored: ${got.stderr}`);
    }
    log(`helm install ${release}: ${objects.length} objects stored (${[...new Set(objects.map((o) => o.kind))].sort().join(', ')})`);
  }
  const ds = kube.kubectlJson<K8sObject>('get', 'daemonset', 'vigil', '-n', 'kube-system');
  assert.equal(ds.spec.template.spec.hostPID, true);
  assert.deepEqual(ds.spec.template.spec.containers.map((c: K8sObject) => c.name).sort(), ['export-stdout', 'vigil']);
  for (const crd of ['tracingpolicies.cilium.io', 'tracingpoliciesnamespaced.cilium.io']) {
    assert.equal(kube.kubectl('get', 'crd', crd, '-o', 'name').status, 0, `${crd} installed from the chart's crds/`);
  }
});

test("kubectl apply of the seed's policy: the agent loads it and says so in its status; kubectl get shows it; kubectl delete unloads it", { timeout: 120_000 }, async () => {
  await theAgent();
  const seed = path.join(repoRoot, 'deploy', 'policies', 'deny-privileged-pod-start.yaml');
  assert.equal(kube.kubectl('apply', '-f', seed).status, 0);
  const entry = await nodeStatus('tracingpolicies', 'deny-privileged-pod-start');
  assert.equal(entry.state, 'enabled', entry.message);
  assert.equal(entry.loadedGeneration, 1);
  const listed = (await agentPolicies()).find((p) => p.name === 'deny-privileged-pod-start');
  assert.ok(listed, 'the agent lists it');
  assert.match(listed.info, /^deny-privileged-pod-start \(object:1\/[0-9a-f-]{36}\) \(type:TracingPolicy\/cilium\.io\/v1alpha1\)$/);
  const table = kube.kubectl('get', 'tracingpolicies');
  assert.match(table.stdout, /^NAME\s+STATE\s+MESSAGE\s+AGE$/m);
  assert.match(table.stdout, /^deny-privileged-pod-start\s+enabled\s/m);
  log(`kubectl get tracingpolicies:\n${table.stdout.trimEnd()}`);
  assert.equal(kube.kubectl('delete', '-f', seed).status, 0);
  await untilUnloaded(['deny-privileged-pod-start']);
});

test('a spec the compiler refuses: the status names the field; the previous generation keeps enforcing; the next good one replaces it', { timeout: 120_000 }, async () => {
  await theAgent();
  const first = scratchFile('crd-first');
  const second = scratchFile('crd-second');
  apply(killOnOpen('crd-update', first));
  assert.equal((await nodeStatus('tracingpolicies', 'crd-update')).state, 'enabled');
  assert.ok(await killed(first));

  apply(killOnOpen('crd-update', first, [{ index: 5, operator: 'Equal', values: [first] }]));
  const refused = await nodeStatus('tracingpolicies', 'crd-update');
  assert.equal(refused.state, 'error');
  assert.match(refused.message, /^spec\.kprobes\[0\]\.selectors\[0\]\.matchArgs\[0\]\.index: /);
  assert.equal(refused.loadedGeneration, 1, 'generation 1 still enforcing');
  assert.equal(refused.object.status.state, 'error');
  assert.equal(refused.object.status.message, `${NODE}: ${refused.message}`);
  assert.ok(await killed(first), 'generation 1 still kills');
  log(`refused generation 2: ${refused.message}`);

  apply(killOnOpen('crd-update', second));
  const replaced = await nodeStatus('tracingpolicies', 'crd-update');
  assert.equal(replaced.state, 'enabled');
  assert.equal(replaced.loadedGeneration, 3);
  assert.ok(await killed(second));
  assert.equal(await killed(first), false, 'generation 1 is gone');
  assert.equal(kube.kubectl('delete', 'tracingpolicy', 'crd-update').status, 0);
  await untilUnloaded(['crd-update']);
});

/** The library's policy files, with their directories (the library has subdirectories). */
function libraryFiles(dir = LIBRARY): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    if (e.isDirectory()) return libraryFiles(path.join(dir, e.name)).map((f) => path.join(e.name, f));
    return /\.ya?ml$/.test(e.name) ? [e.name] : [];
  }).sort();
}

test("Tetragon's library through kubectl, in monitor mode: each object is enabled or refused with a message, as the agent lists it; delete unloads", { timeout: 900_000 }, async () => {
  await theAgent();
  assert.equal(kube.kubectl('create', 'namespace', 'vigil-lib').status, 0);
  const files = libraryFiles();
  let enabled = 0;
  const refused: string[] = [];
  for (const file of files) {
    // As the library test adds them: the policy-mode option set to monitor, so nothing on the machine is killed.
    const docs = YAML.parseAllDocuments(fs.readFileSync(path.join(LIBRARY, file), 'utf8')).map((d) => d.toJS() as K8sObject)
      .filter((o) => o?.kind === 'TracingPolicy' || o?.kind === 'TracingPolicyNamespaced');
    for (const doc of docs) doc.spec.options = [...(doc.spec.options ?? []).filter((o: K8sObject) => o.name !== 'policy-mode'), { name: 'policy-mode', value: 'monitor' }];
    const copy = scratchFile('library.yaml', docs.map((d) => YAML.stringify(d)).join('---\n'));
    const r = kube.kubectl('apply', '-n', 'vigil-lib', '-f', copy);
    assert.equal(r.status, 0, `${file}: ${r.stderr}`);
    for (const doc of docs) {
      const namespaced = doc.kind === 'TracingPolicyNamespaced';
      const entry = await nodeStatus(namespaced ? 'tracingpoliciesnamespaced' : 'tracingpolicies', doc.metadata.name, namespaced ? 'vigil-lib' : undefined);
      const listed = (await agentPolicies()).some((p) => p.name === doc.metadata.name);
      if (entry.state === 'enabled') {
        enabled++;
        assert.ok(listed, `${file}: enabled in the status, listed by the agent`);
      } else {
        assert.equal(entry.state, 'error');
        assert.ok(entry.message.length > 0, `${file}: refused with a message`);
        assert.ok(!listed, `${file}: refused, not listed by the agent`);
        refused.push(`${file}: ${entry.message}`);
      }
    }
    assert.equal(kube.kubectl('delete', '-n', 'vigil-lib', '-f', copy).status, 0);
    await untilUnloaded(docs.map((d) => d.metadata.name));
  }
  log(`library through kubectl: ${enabled} of ${files.length} enabled, ${refused.length} refused`);
  for (const line of refused) log(`  refused: ${line}`);
  assert.equal(enabled + refused.length, files.length, 'one policy a file');
  assert.ok(enabled > 0);
});

test('apply → enforce: time from kubectl apply to the policy killing, over 20 policies', { timeout: 600_000 }, async () => {
  await theAgent();
  const times: number[] = [];
  for (let i = 0; i < 20; i++) {
    const marker = scratchFile(`latency-${i}`);
    const name = `crd-latency-${i}`;
    const file = scratchFile(`${name}.yaml`, killOnOpen(name, marker));
    const start = performance.now();
    const r = kube.kubectl('apply', '-f', file);
    assert.equal(r.status, 0, r.stderr);
    await waitFor(`${name} enforcing`, async () => ((await killed(marker)) ? true : undefined), 30_000);
    times.push(performance.now() - start);
    assert.equal(kube.kubectl('delete', '-f', file).status, 0);
    await untilUnloaded([name]);
  }
  const sorted = [...times].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  log(`kubectl apply → enforcing, 20 policies: p50 ${at(0.5).toFixed(0)} ms, p99 ${at(0.99).toFixed(0)} ms, min ${sorted[0]!.toFixed(0)} ms (kubectl's own start included)`);
  assert.equal(times.length, 20);
});

test('the API server ends watches every 5-10 s: the agent watches again from its resourceVersion, without listing, and keeps following', { timeout: 120_000 }, async () => {
  const a = await theAgent();
  // At least two watch timeouts since the agent started.
  await new Promise((r) => setTimeout(r, 12_000));
  const watches = counterSum(kube.metrics(), 'apiserver_request_total', { verb: 'WATCH', resource: 'tracingpolicies' });
  const lists = a.stderr().split('\n').filter((l) => / listed \d+ tracingpolicies at resourceVersion /.test(l));
  log(`watches of tracingpolicies served: ${watches}; lists by the agent: ${lists.length}`);
  assert.ok(watches >= 3, `the agent watched again after the server ended its watch (${watches} watches)`);
  assert.equal(lists.length, 1, lists.join('\n'));
  const marker = scratchFile('after-resume');
  apply(killOnOpen('crd-after-resume', marker));
  assert.equal((await nodeStatus('tracingpolicies', 'crd-after-resume')).state, 'enabled');
  assert.ok(await killed(marker));
  assert.equal(kube.kubectl('delete', 'tracingpolicy', 'crd-after-resume').status, 0);
  await untilUnloaded(['crd-after-resume']);
});

test("pods created through the API are what the agent's pod watcher sees, joined with a containerd container by the pod uid of its cgroup", { timeout: 120_000 }, async () => {
  await theAgent();
  assert.equal(kube.kubectl('create', 'namespace', 'vigil-pods').status, 0);
  apply(YAML.stringify({
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: 'web', namespace: 'vigil-pods', labels: { app: 'web', run: RUN } },
    spec: { nodeName: NODE, containers: [{ name: 'main', image: IMAGE }] },
  }));
  const uid = kube.kubectlJson<K8sObject>('get', 'pod', 'web', '-n', 'vigil-pods').metadata.uid as string;
  const events: K8sObject[] = [];
  const stream = client.serverStream('GetEvents', { allow_list: [{ event_set: [1], namespace: ['vigil-pods'] }] });
  stream.on('data', (e: K8sObject) => events.push(e));
  stream.on('error', () => undefined);
  try {
    await new Promise((r) => setTimeout(r, 500));
    const id = hexId();
    containers.push(id);
    // No io.kubernetes.* labels: only the API server can name this container's pod.
    await runContainer(ctd, { id, image: IMAGE, args: ['sh', '-c', 'sleep 1; /bin/cat /proc/version >/dev/null; sleep 30'], detach: true, cgroupParent: `/kubepods/besteffort/pod${uid}`, labels: { 'vigil-run': RUN } });
    const exec = await waitFor('an exec of the pod', () => events.find((e) => String(e.process_exec?.process?.arguments ?? '').includes('/proc/version')), 15_000);
    const pod = exec.process_exec.process.pod;
    assert.equal(pod.namespace, 'vigil-pods');
    assert.equal(pod.name, 'web');
    assert.deepEqual(pod.pod_labels, { app: 'web', run: RUN });
    assert.equal(exec.process_exec.process.docker, id.slice(0, 31));
    log(`pod from the API server in the event: ${pod.namespace}/${pod.name} ${JSON.stringify(pod.pod_labels)}, container ${id.slice(0, 12)}`);
  } finally {
    stream.cancel();
  }
});
