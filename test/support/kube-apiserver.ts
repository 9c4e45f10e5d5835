/**
 * A real Kubernetes API server for the tests: etcd and kube-apiserver 1.20
 * (built from Debian's source by scripts/kube-apiserver-build.sh, which CI's
 * setup runs) started by scripts/kube-apiserver-run.sh in a directory of
 * their own, with kubectl of the same build and helm (scripts/setup.sh) run
 * against it. There is no kubelet, controller-manager or scheduler: objects
 * are stored and validated, nothing reconciles them.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from '../../services/lib/paths.js';

const RUN_SCRIPT = path.join(repoRoot, 'scripts', 'kube-apiserver-run.sh');
export const HELM = path.join(repoRoot, 'build', 'tools', 'helm');

export interface KubeApiServer {
  kubeconfig: string;
  /** Runs kubectl against it; never throws (the status is in the result). */
  kubectl(...args: string[]): { status: number | null; stdout: string; stderr: string };
  /** Runs kubectl and parses its JSON output; throws with stderr when it fails. */
  kubectlJson<T = Record<string, unknown>>(...args: string[]): T;
  /** Runs helm against it. */
  helm(...args: string[]): { status: number | null; stdout: string; stderr: string };
  /** Text of the server's /metrics. */
  metrics(): string;
  stop(): void;
}

/** kubectl of the API server's own build (a newer one on PATH may not speak to 1.20 as well). */
function kubectlBinary(): string {
  const cache = '/var/cache/vigil';
  const dirs = fs.existsSync(cache) ? fs.readdirSync(cache).filter((d) => d.startsWith('kube-apiserver-')).sort() : [];
  for (const dir of dirs.reverse()) {
    const candidate = path.join(cache, dir, 'kubectl');
    if (fs.existsSync(candidate)) return candidate;
  }
  throw new Error(`no kubectl in ${cache}/kube-apiserver-*/: run scripts/kube-apiserver-build.sh`);
}

/** Starts etcd and kube-apiserver; `extraArgs` are added to kube-apiserver's flags. */
export function startKubeApiServer(extraArgs: string[] = []): KubeApiServer {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-kube-'));
  const kubectl = kubectlBinary();
  const env = { ...process.env, KUBE_APISERVER_EXTRA_ARGS: extraArgs.join(' ') };
  const kubeconfig = execFileSync('bash', [RUN_SCRIPT, 'start', dir], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  const runWith = (binary: string, args: string[]) => {
    const r = spawnSync(binary, ['--kubeconfig', kubeconfig, ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const server: KubeApiServer = {
    kubeconfig,
    kubectl: (...args) => runWith(kubectl, args),
    kubectlJson: <T>(...args: string[]) => {
      const r = runWith(kubectl, [...args, '-o', 'json']);
      if (r.status !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
      return JSON.parse(r.stdout) as T;
    },
    helm: (...args) => runWith(HELM, args),
    metrics: () => {
      const r = runWith(kubectl, ['get', '--raw', '/metrics']);
      if (r.status !== 0) throw new Error(`kubectl get --raw /metrics: ${r.stderr}`);
      return r.stdout;
    },
    stop: () => { execFileSync('bash', [RUN_SCRIPT, 'stop', dir], { stdio: 'ignore' }); },
  };
  return server;
}

/** The sum of a counter's samples whose labels include every one given. */
export function counterSum(metrics: string, name: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const line of metrics.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const labelText = line.slice(name.length + 1, line.lastIndexOf('}'));
    if (Object.entries(labels).every(([k, v]) => labelText.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}
