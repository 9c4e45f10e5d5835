/**
 * TracingPolicy and TracingPolicyNamespaced objects (cilium.io/v1alpha1) of
 * the Kubernetes API, loaded into the policy store as they change: `kubectl
 * apply` adds or replaces a policy on every node, `kubectl delete` removes it.
 *
 * - Each kind is listed, then watched (@kubernetes/client-node's ListWatch);
 *   a watch that breaks is started again from the last resourceVersion seen,
 *   and when the API says that version is gone (410) the kind is listed
 *   afresh, objects missing from the new list being deleted. Failures are
 *   retried with backoff (1 s doubling to 30 s) and logged.
 * - Policies are in domain "k8s" (Tetragon's K8sDomain) and carry Tetragon's
 *   info string: `NAME (object:GENERATION/UID) (type:KIND/cilium.io/v1alpha1)`.
 * - A new generation of an object replaces its policies (policy-replace.ts):
 *   a spec that does not compile is refused before anything is unloaded, so
 *   the previous generation keeps enforcing. Changes of the status alone
 *   (the generation stays) are not loads.
 * - Each node writes what became of the object on it to the status
 *   subresource, under `status.nodes.<node>`: `state` (enabled, or error),
 *   `message` (the field path and reason, or the sensor's refusal),
 *   `observedGeneration`, and `loadedGeneration` (the generation enforcing
 *   here, absent when none is). `status.state` and `status.message` sum the
 *   nodes up for `kubectl get` (error when any node has one, naming the first
 *   such node). Status is replaced with the object's resourceVersion and
 *   retried on a conflict, so nodes writing at once do not lose each other's
 *   entries. The status says what happened at load: a policy later disabled
 *   through the gRPC API is not reported there. Nodes that left the cluster
 *   keep their entries.
 *
 * Object sizes are bounded by the API server (etcd's request limit); the
 * store parses every text within POLICY_LIMITS in a worker.
 */
import type * as k8s from '@kubernetes/client-node';
import { PolicyInvalidError, type PolicyStore } from './policy-store.js';
import { replacePolicies, unloadPolicies, type LoadedText } from './policy-replace.js';
import { kubernetesApiConfigured, loadKubeConfig, loadKubernetesClient, WatchRetry, type KubernetesClient } from '../lib/kubernetes.js';

/** Tetragon's domain of the policies that come from the Kubernetes API. */
export const K8S_DOMAIN = 'k8s';
const GROUP = 'cilium.io';
const VERSION = 'v1alpha1';
/** Attempts of a status write that meets a conflict (another node wrote in between). */
const STATUS_ATTEMPTS = 8;

interface PolicyKind { kind: 'TracingPolicy' | 'TracingPolicyNamespaced'; plural: string; namespaced: boolean }
const KINDS: PolicyKind[] = [
  { kind: 'TracingPolicy', plural: 'tracingpolicies', namespaced: false },
  { kind: 'TracingPolicyNamespaced', plural: 'tracingpoliciesnamespaced', namespaced: true },
];

/** Empty messages are left out: the API client sends an empty string as null, which the schema (type: string) refuses. */
export interface NodePolicyStatus {
  state: 'enabled' | 'error';
  message?: string;
  observedGeneration: number;
  loadedGeneration?: number;
  /** When this node last wrote its entry (RFC 3339). */
  updated: string;
}

export interface PolicyObjectStatus {
  state: 'enabled' | 'error';
  message?: string;
  nodes: Record<string, NodePolicyStatus>;
}

interface PolicyObject extends k8s.KubernetesObject {
  spec?: unknown;
  status?: Partial<PolicyObjectStatus>;
}

/** The summary kubectl shows, from every node's entry. */
export function summarizeStatus(nodes: Record<string, NodePolicyStatus>): PolicyObjectStatus {
  const failing = Object.keys(nodes).sort().find((node) => nodes[node]!.state === 'error');
  return failing === undefined
    ? { state: 'enabled', nodes }
    : { state: 'error', message: `${failing}: ${nodes[failing]!.message ?? ''}`, nodes };
}

export interface PolicyCrdOptions {
  nodeName: string;
  log: (line: string) => void;
  /** Delay before retrying after the API failed; doubles up to 30 s. Default 1 s. */
  retryMs?: number;
}

interface Tracked {
  uid: string;
  /** The generation last handled (loaded or refused). */
  generation: number;
  loaded: LoadedText | undefined;
  loadedGeneration: number | undefined;
}

const errorMessage = (err: unknown): string => (err instanceof Error ? err.message : String(err));
const statusCode = (err: unknown): number | undefined => (err as { code?: unknown }).code as number | undefined;

export class PolicyCrdWatch {
  private readonly tracked = new Map<string, Tracked>();
  private readonly informers: { informer: k8s.ListWatch<PolicyObject>; retry: WatchRetry }[] = [];
  private readonly api: k8s.CustomObjectsApi;
  private queue: Promise<void> = Promise.resolve();

  constructor(client: KubernetesClient, kc: k8s.KubeConfig, private readonly store: PolicyStore, private readonly opts: PolicyCrdOptions) {
    this.api = kc.makeApiClient(client.CustomObjectsApi);
    for (const kind of KINDS) {
      const list = async (): Promise<k8s.KubernetesListObject<PolicyObject>> => {
        const request = { group: GROUP, version: VERSION, plural: kind.plural };
        const objects = await (kind.namespaced ? this.api.listCustomObjectForAllNamespaces(request) : this.api.listClusterCustomObject(request)) as k8s.KubernetesListObject<PolicyObject>;
        retry.succeeded();
        // Once at start, and again only when the API no longer has the watch's resourceVersion (410 Gone).
        opts.log(`kubernetes: listed ${objects.items.length} ${kind.plural} at resourceVersion ${objects.metadata?.resourceVersion ?? '?'}`);
        return objects;
      };
      const informer = new client.ListWatch<PolicyObject>(`/apis/${GROUP}/${VERSION}/${kind.plural}`, new client.Watch(kc), list, false);
      // The list runs only once start() is called, after this.
      const retry = new WatchRetry(informer, kind.plural, opts.log, opts.retryMs);
      informer.on(client.ADD, (obj) => { retry.succeeded(); this.changed(kind, obj); });
      informer.on(client.UPDATE, (obj) => { retry.succeeded(); this.changed(kind, obj); });
      informer.on(client.DELETE, (obj) => { retry.succeeded(); this.gone(kind, obj); });
      informer.on(client.ERROR, (err: unknown) => retry.failed(err));
      this.informers.push({ informer, retry });
    }
  }

  /** Lists both kinds and starts watching; resolves once the listed objects are handled (loaded or refused). */
  async start(): Promise<void> {
    await Promise.all(this.informers.map(({ informer }) => informer.start()));
    await this.idle();
  }

  /** Resolves when every change seen so far is handled. */
  idle(): Promise<void> {
    return this.queue;
  }

  /** Stops watching; the loaded policies stay (the store owns them). */
  async close(): Promise<void> {
    for (const { retry } of this.informers) retry.stop();
    await Promise.all(this.informers.map(({ informer }) => informer.stop()));
    await this.queue;
  }

  private serialized(work: () => Promise<void>): void {
    this.queue = this.queue.then(work).catch((err: unknown) => this.opts.log(`kubernetes: tracing policy: ${errorMessage(err)}`));
  }

  private changed(kind: PolicyKind, obj: PolicyObject): void {
    const key = objectKey(kind, obj);
    const uid = obj.metadata?.uid ?? '';
    const generation = obj.metadata?.generation ?? 0;
    this.serialized(async () => {
      const before = this.tracked.get(key);
      if (before !== undefined && before.uid === uid && before.generation === generation) return;
      const source = tetragonInfo(kind, obj);
      const { loaded, error } = await replacePolicies(this.store, before?.loaded, policyText(kind, obj), { source, domain: K8S_DOMAIN, log: this.opts.log });
      const loadedGeneration = error === undefined ? generation : loaded === undefined ? undefined : before?.loadedGeneration;
      this.tracked.set(key, { uid, generation, loaded, loadedGeneration });
      const message = error === undefined ? '' : error instanceof PolicyInvalidError ? `${error.path === '' ? '' : `${error.path}: `}${error.reason}` : error.message;
      this.opts.log(error === undefined ? `${source}: loaded` : `${source}: refused: ${message}`);
      const entry: NodePolicyStatus = {
        state: error === undefined ? 'enabled' : 'error', ...(message !== '' && { message }), observedGeneration: generation,
        ...(loadedGeneration !== undefined && { loadedGeneration }), updated: new Date().toISOString(),
      };
      await this.writeStatus(kind, obj, entry).catch((err: unknown) => this.opts.log(`${source}: status not written: ${errorMessage(err)}`));
    });
  }

  private gone(kind: PolicyKind, obj: PolicyObject): void {
    const key = objectKey(kind, obj);
    this.serialized(async () => {
      const before = this.tracked.get(key);
      if (before === undefined) return;
      this.tracked.delete(key);
      const source = tetragonInfo(kind, obj);
      await unloadPolicies(this.store, before.loaded, source, this.opts.log);
      this.opts.log(`${source}: deleted`);
    });
  }

  /** Writes this node's entry into the object's status, keeping the other nodes' (replace with resourceVersion, retried on conflict). */
  private async writeStatus(kind: PolicyKind, obj: PolicyObject, entry: NodePolicyStatus): Promise<void> {
    const name = obj.metadata?.name ?? '';
    const namespace = obj.metadata?.namespace ?? '';
    const target = { group: GROUP, version: VERSION, plural: kind.plural, name };
    for (let attempt = 1; ; attempt++) {
      let current: PolicyObject;
      try {
        current = (await (kind.namespaced ? this.api.getNamespacedCustomObject({ ...target, namespace }) : this.api.getClusterCustomObject(target))) as PolicyObject;
      } catch (err) {
        if (statusCode(err) === 404) return; // deleted meanwhile
        throw err;
      }
      if (current.metadata?.uid !== obj.metadata?.uid) return; // a new object under the same name: its own change will write
      const body = { ...current, status: summarizeStatus({ ...current.status?.nodes, [this.opts.nodeName]: entry }) };
      try {
        await (kind.namespaced ? this.api.replaceNamespacedCustomObjectStatus({ ...target, namespace, body }) : this.api.replaceClusterCustomObjectStatus({ ...target, body }));
        return;
      } catch (err) {
        if (statusCode(err) !== 409 || attempt >= STATUS_ATTEMPTS) throw err;
      }
    }
  }
}

function objectKey(kind: PolicyKind, obj: PolicyObject): string {
  return `${kind.kind}/${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}

/** Tetragon's TpInfo of an object, the source of its policies. */
function tetragonInfo(kind: PolicyKind, obj: PolicyObject): string {
  return `${obj.metadata?.name ?? ''} (object:${obj.metadata?.generation ?? 0}/${obj.metadata?.uid ?? ''}) (type:${kind.kind}/${GROUP}/${VERSION})`;
}

/** The policy text of an object: its kind, name, namespace and spec (JSON is YAML); the rest of its metadata and its status are not the policy's. */
function policyText(kind: PolicyKind, obj: PolicyObject): string {
  const metadata = { name: obj.metadata?.name ?? '', ...(kind.namespaced && { namespace: obj.metadata?.namespace ?? '' }) };
  return JSON.stringify({ apiVersion: `${GROUP}/${VERSION}`, kind: kind.kind, metadata, spec: obj.spec ?? null }, null, 2);
}

/**
 * Starts the watch where the Kubernetes API is configured; undefined
 * elsewhere. The first list failing (CRDs not installed, no permission) is
 * logged and retried, not fatal: the node keeps running its other policies.
 */
export async function watchPolicyCrds(store: PolicyStore, opts: PolicyCrdOptions & { kubeconfig?: string }): Promise<PolicyCrdWatch | undefined> {
  if (!kubernetesApiConfigured(opts.kubeconfig)) return undefined;
  const client = await loadKubernetesClient();
  const watch = new PolicyCrdWatch(client, loadKubeConfig(client, opts.kubeconfig), store, opts);
  await watch.start();
  return watch;
}
