/**
 * Pod metadata from the Kubernetes API: the pods scheduled on this node
 * (list, then watch, with fieldSelector spec.nodeName=<node>), indexed by the
 * ids of their containers as the pod status reports them
 * (`containerd://<64-hex id>`; any runtime scheme is accepted).
 *
 * This gives what containerd's labels cannot: the pod's own labels and uid.
 * It is enabled only in a cluster (KUBERNETES_SERVICE_HOST, with the service
 * account's token) or when a kubeconfig is given (option or KUBECONFIG).
 *
 * A container runs a moment before the kubelet reports its id in the pod's
 * status, so a process of a new container may not be found by
 * lookupContainer() yet; lookupPod() by the pod uid from its cgroup path
 * (…/pod<uid>/<id>) fills that gap.
 */
import os from 'node:os';
import type * as k8s from '@kubernetes/client-node';
import { kubernetesApiConfigured, loadKubeConfig, loadKubernetesClient, WatchRetry, type KubernetesClient } from '../../lib/kubernetes.js';

export interface PodMeta {
  namespace: string;
  podName: string;
  podLabels: Record<string, string>;
  podUid: string;
}

export interface PodContainerInfo extends PodMeta {
  containerName: string;
  image: string;
  startedAt?: Date;
}

export interface KubernetesPodsOptions {
  /** Default: $NODE_NAME (set from spec.nodeName in a DaemonSet), else the host name. */
  nodeName?: string;
  /** A kubeconfig file; default $KUBECONFIG, else the in-cluster service account. */
  kubeconfig?: string;
  log?: (line: string) => void;
  /** Delay before retrying after the API failed; doubles up to 30 s. Default 1 s. */
  retryMs?: number;
}

type ChangeListener = (containerId: string, info: PodContainerInfo | undefined) => void;

/** `containerd://<id>` → `<id>`; '' when the status has no id yet. */
function containerIdOf(status: k8s.V1ContainerStatus): string {
  const raw = status.containerID ?? '';
  const sep = raw.indexOf('://');
  return sep < 0 ? raw : raw.slice(sep + 3);
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

function sameInfo(a: PodContainerInfo, b: PodContainerInfo): boolean {
  return a.namespace === b.namespace && a.podName === b.podName && a.podUid === b.podUid
    && a.containerName === b.containerName && a.image === b.image
    && a.startedAt?.getTime() === b.startedAt?.getTime() && sameLabels(a.podLabels, b.podLabels);
}

/** The pod's containers that have an id, by id. */
function podContainers(pod: k8s.V1Pod, meta: PodMeta): Map<string, PodContainerInfo> {
  const specImages = new Map<string, string>();
  for (const c of [...pod.spec?.initContainers ?? [], ...pod.spec?.containers ?? [], ...pod.spec?.ephemeralContainers ?? []]) {
    if (c.image !== undefined) specImages.set(c.name, c.image);
  }
  const out = new Map<string, PodContainerInfo>();
  const status = pod.status;
  for (const cs of [...status?.initContainerStatuses ?? [], ...status?.containerStatuses ?? [], ...status?.ephemeralContainerStatuses ?? []]) {
    const id = containerIdOf(cs);
    if (id === '') continue;
    const info: PodContainerInfo = { ...meta, containerName: cs.name, image: cs.image || specImages.get(cs.name) || '' };
    // Lists are deserialized (Date), watch events are raw JSON (string): new Date() takes both.
    const started = cs.state?.running?.startedAt ?? cs.state?.terminated?.startedAt;
    if (started !== undefined) info.startedAt = new Date(started);
    out.set(id, info);
  }
  return out;
}

export class KubernetesPods {
  private readonly pods = new Map<string, { meta: PodMeta; containers: Map<string, PodContainerInfo> }>();
  private readonly containers = new Map<string, PodContainerInfo>();
  private readonly listeners = new Set<ChangeListener>();
  private readonly log: (line: string) => void;
  private closed = false;
  private readonly informer: k8s.ListWatch<k8s.V1Pod>;
  private readonly retry: WatchRetry;

  private constructor(client: KubernetesClient, kc: k8s.KubeConfig, readonly nodeName: string, opts: KubernetesPodsOptions) {
    this.log = opts.log ?? (() => {});
    const api = kc.makeApiClient(client.CoreV1Api);
    const fieldSelector = `spec.nodeName=${nodeName}`;
    const list = async (): Promise<k8s.V1PodList> => {
      const pods = await api.listPodForAllNamespaces({ fieldSelector });
      this.retry.succeeded();
      return pods;
    };
    this.informer = new client.ListWatch<k8s.V1Pod>('/api/v1/pods', new client.Watch(kc), list, false, undefined, fieldSelector);
    this.retry = new WatchRetry(this.informer, 'pod', this.log, opts.retryMs);
    this.informer.on(client.ADD, (pod) => this.onPod(pod));
    this.informer.on(client.UPDATE, (pod) => this.onPod(pod));
    this.informer.on(client.DELETE, (pod) => this.onPodGone(pod));
  }

  /** True in a cluster or with a kubeconfig: where start() does something. */
  static enabled(opts: KubernetesPodsOptions = {}): boolean {
    return kubernetesApiConfigured(opts.kubeconfig);
  }

  /**
   * Lists this node's pods and starts watching them; undefined where not
   * enabled. Rejects if the first list or watch fails; later failures are
   * retried with backoff (the informer re-lists when its resourceVersion expired).
   */
  static async start(opts: KubernetesPodsOptions = {}): Promise<KubernetesPods | undefined> {
    if (!KubernetesPods.enabled(opts)) return undefined;
    const client = await loadKubernetesClient();
    const kc = loadKubeConfig(client, opts.kubeconfig);
    const pods = new KubernetesPods(client, kc, opts.nodeName ?? process.env.NODE_NAME ?? os.hostname(), opts);
    let firstError: unknown;
    const onFirstError = (err: unknown): void => { firstError ??= err ?? new Error('failed'); };
    pods.informer.on(client.ERROR, onFirstError);
    await pods.informer.start();
    pods.informer.off(client.ERROR, onFirstError);
    if (firstError !== undefined) {
      await pods.close();
      throw new Error(`Kubernetes API (${kc.getCurrentCluster()?.server ?? 'no cluster'}): ${String(firstError)}`);
    }
    pods.informer.on(client.ERROR, (err: unknown) => pods.retry.failed(err));
    return pods;
  }

  /** The pod and container that a container id belongs to, once the pod's status names it. */
  lookupContainer(containerId: string): PodContainerInfo | undefined {
    return this.containers.get(containerId);
  }

  /** A pod of this node by uid (dashed, as in the kubelet's cgroupfs paths; its systemd driver writes '_' for '-'). */
  lookupPod(podUid: string): PodMeta | undefined {
    return this.pods.get(podUid)?.meta;
  }

  /** Calls `cb` when a container of a pod appears or changes, and with undefined when it is gone. */
  onChange(cb: ChangeListener): () => void {
    this.listeners.add(cb);
    return () => { this.listeners.delete(cb); };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.retry.stop();
    this.listeners.clear();
    await this.informer.stop();
  }

  private notify(id: string, info: PodContainerInfo | undefined): void {
    for (const cb of this.listeners) {
      try {
        cb(id, info);
      } catch (err) {
        this.log(`kubernetes: onChange listener failed: ${String(err)}`);
      }
    }
  }

  private onPod(pod: k8s.V1Pod): void {
    // Lists and watch events both get here: the API works again, so the retry delay starts over.
    this.retry.succeeded();
    const uid = pod.metadata?.uid;
    if (!uid) return;
    const meta: PodMeta = {
      namespace: pod.metadata?.namespace ?? '',
      podName: pod.metadata?.name ?? '',
      podLabels: { ...pod.metadata?.labels },
      podUid: uid,
    };
    const next = podContainers(pod, meta);
    const previous = this.pods.get(uid)?.containers ?? new Map<string, PodContainerInfo>();
    this.pods.set(uid, { meta, containers: next });
    for (const id of previous.keys()) {
      if (!next.has(id)) this.removeContainer(id);
    }
    for (const [id, info] of next) {
      const old = this.containers.get(id);
      this.containers.set(id, info);
      if (old === undefined || !sameInfo(old, info)) this.notify(id, info);
    }
  }

  private onPodGone(pod: k8s.V1Pod): void {
    const uid = pod.metadata?.uid;
    const entry = uid === undefined ? undefined : this.pods.get(uid);
    if (entry === undefined) return;
    this.pods.delete(uid!);
    for (const id of entry.containers.keys()) this.removeContainer(id);
  }

  private removeContainer(id: string): void {
    if (this.containers.delete(id)) this.notify(id, undefined);
  }
}
