/**
 * What the services that read the Kubernetes API share: the client library,
 * where its configuration comes from, and how a list/watch that failed is
 * started again.
 */
import type * as k8s from '@kubernetes/client-node';

/** The client library. Loaded only where the API is used: loading it costs ~80 MB of memory. */
export type KubernetesClient = typeof k8s;
export const loadKubernetesClient = (): Promise<KubernetesClient> => import('@kubernetes/client-node');

/** True in a cluster (a pod's service account) or with a kubeconfig (the flag or KUBECONFIG). */
export function kubernetesApiConfigured(kubeconfig?: string): boolean {
  return Boolean(kubeconfig || process.env.KUBECONFIG || process.env.KUBERNETES_SERVICE_HOST);
}

/** The API client's configuration: the file given, else $KUBECONFIG, else the pod's service account. */
export function loadKubeConfig(client: KubernetesClient, kubeconfig?: string): k8s.KubeConfig {
  const kc = new client.KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else if (process.env.KUBECONFIG) kc.loadFromDefault();
  else kc.loadFromCluster();
  return kc;
}

const RETRY_MAX_MS = 30_000;

/**
 * Starts an informer again after it failed, with backoff: `baseMs` doubling
 * up to 30 s, back to `baseMs` once succeeded() says the API answers. The
 * informer resumes its watch from its last resourceVersion (a fresh list
 * when it has none, or when the API answered 410 Gone).
 */
export class WatchRetry {
  private delayMs: number;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly informer: { start(): Promise<void> },
    private readonly what: string,
    private readonly log: (line: string) => void,
    private readonly baseMs = 1_000,
  ) {
    this.delayMs = baseMs;
  }

  succeeded(): void {
    this.delayMs = this.baseMs;
  }

  failed(err: unknown): void {
    if (this.stopped) return;
    this.log(`kubernetes: ${this.what} list/watch failed (${err instanceof Error ? err.message : String(err)}); retrying in ${this.delayMs} ms`);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => { if (!this.stopped) void this.informer.start(); }, this.delayMs);
    this.delayMs = Math.min(this.delayMs * 2, RETRY_MAX_MS);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
