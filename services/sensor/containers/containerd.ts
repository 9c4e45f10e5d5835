/**
 * Pod metadata from containerd, for labelling a container's processes.
 *
 * Talks to containerd's gRPC API (services/sensor/containers/proto: a client's
 * copy of the few services and messages used, with containerd's own names and
 * field numbers): Containers.List at start and every `refreshMs`, then
 * Events.Subscribe for changes. A create or start fetches the container
 * (Containers.Get) into the cache; a delete, or the exit of the container's
 * init process, drops it and tells the onChange listeners. If the event stream
 * breaks (containerd restarted), it resubscribes with backoff and re-lists,
 * so nothing that changed meanwhile is missed; the periodic re-list also
 * removes whatever a lost event would have left behind.
 *
 * Kubernetes names come from the labels that the kubelet puts on containers
 * (io.kubernetes.pod.namespace, io.kubernetes.pod.name,
 * io.kubernetes.container.name). Every other label of the container is kept
 * in PodInfo.labels and stands in for the pod's labels when no Kubernetes API
 * is reachable (kubernetes.ts gives the real ones). Containers without those
 * labels (not started by a kubelet) are cached too, with empty names.
 *
 * Containers that exist but whose task is not running when the cache is
 * first listed are cached as well; they are harmless, since only running
 * processes are looked up.
 */
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { repoRoot } from '../../lib/paths.js';
import type { PodInfo } from './registry.js';

/** A container's pod as containerd's labels tell it (registry.ts states the shape). */
export type { PodInfo };

export interface ContainerdMetadataOptions {
  /** containerd namespaces to follow; default all, as Namespaces.List reports at each (re)list. */
  namespaces?: string[];
  log?: (line: string) => void;
  /** How often to re-list every container; default 30 s. */
  refreshMs?: number;
  /** Deadline of each unary call; default 10 s. */
  callTimeoutMs?: number;
}

type ChangeListener = (id: string, info: PodInfo | undefined) => void;

const LABEL_POD_NAMESPACE = 'io.kubernetes.pod.namespace';
const LABEL_POD_NAME = 'io.kubernetes.pod.name';
const LABEL_CONTAINER_NAME = 'io.kubernetes.container.name';
/** gRPC metadata key through which containerd takes the namespace of a call. */
const NAMESPACE_HEADER = 'containerd-namespace';

const TOPIC_CONTAINER_CREATE = '/containers/create';
const TOPIC_CONTAINER_UPDATE = '/containers/update';
const TOPIC_CONTAINER_DELETE = '/containers/delete';
const TOPIC_TASK_START = '/tasks/start';
const TOPIC_TASK_EXIT = '/tasks/exit';
const TOPICS = [TOPIC_CONTAINER_CREATE, TOPIC_CONTAINER_UPDATE, TOPIC_CONTAINER_DELETE, TOPIC_TASK_START, TOPIC_TASK_EXIT];

const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5_000;
/** How long a drop shadows answers to calls that were already in flight (far longer than any call). */
const DROP_MEMORY_MS = 60_000;

const PROTO_DIR = path.join(repoRoot, 'services', 'sensor', 'containers', 'proto');
const PROTO_FILES = [
  'containerd/services/containers/v1/containers.proto',
  'containerd/services/events/v1/events.proto',
  'containerd/services/namespaces/v1/namespace.proto',
  'containerd/events/container.proto',
  'containerd/events/task.proto',
];

interface Timestamp { seconds: number; nanos: number }
interface ContainerMessage { id: string; labels: Record<string, string>; image: string; created_at?: Timestamp | null }
interface EnvelopeMessage { namespace: string; topic: string; event?: { type_url: string; value: Uint8Array } | null }

interface Codec<T> {
  serialize: (value: T) => Buffer;
  deserialize: (bytes: Buffer) => T;
}

let rootCache: protobuf.Root | undefined;

function protoRoot(): protobuf.Root {
  if (rootCache === undefined) {
    const root = new protobuf.Root();
    // Imports are relative to the proto directory; google/protobuf/* come bundled with protobufjs.
    root.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(PROTO_DIR, target));
    root.loadSync(PROTO_FILES, { keepCase: true });
    root.resolveAll();
    rootCache = root;
  }
  return rootCache;
}

function codec<T>(typeName: string): Codec<T> {
  const type = protoRoot().lookupType(typeName);
  return {
    serialize: (value) => Buffer.from(type.encode(type.fromObject(value as Record<string, unknown>)).finish()),
    deserialize: (bytes) => type.toObject(type.decode(bytes), { longs: Number, defaults: true }) as T,
  };
}

/** Unary and server-streaming methods by their gRPC path, with their codecs. */
function methods() {
  const method = <Req, Res>(service: string, name: string, req: string, res: string) => ({
    path: `/${service}/${name}`, req: codec<Req>(req), res: codec<Res>(res),
  });
  const containers = 'containerd.services.containers.v1';
  const namespaces = 'containerd.services.namespaces.v1';
  const events = 'containerd.services.events.v1';
  return {
    get: method<{ id: string }, { container?: ContainerMessage | null }>(`${containers}.Containers`, 'Get', `${containers}.GetContainerRequest`, `${containers}.GetContainerResponse`),
    list: method<{ filters: string[] }, { containers: ContainerMessage[] }>(`${containers}.Containers`, 'List', `${containers}.ListContainersRequest`, `${containers}.ListContainersResponse`),
    namespaces: method<{ filter: string }, { namespaces: { name: string }[] }>(`${namespaces}.Namespaces`, 'List', `${namespaces}.ListNamespacesRequest`, `${namespaces}.ListNamespacesResponse`),
    subscribe: method<{ filters: string[] }, EnvelopeMessage>(`${events}.Events`, 'Subscribe', `${events}.SubscribeRequest`, `${events}.Envelope`),
  };
}

/** The container id an event is about, from its payload (an Any of a containerd.events message). */
function eventContainerId(envelope: EnvelopeMessage): { id: string; initExit?: boolean } | undefined {
  const any = envelope.event;
  if (!any) return undefined;
  // containerd 1.x sends bare type names ("containerd.events.TaskStart"); allow a URL prefix too.
  const typeName = any.type_url.slice(any.type_url.lastIndexOf('/') + 1);
  const type = protoRoot().lookupType(typeName);
  const msg = type.toObject(type.decode(any.value), { defaults: true }) as Record<string, string>;
  switch (envelope.topic) {
    case TOPIC_TASK_START: return { id: msg.container_id! };
    // An exec'd process's exit carries its exec id; only the init process's ends the container.
    case TOPIC_TASK_EXIT: return { id: msg.container_id!, initExit: msg.id === msg.container_id };
    default: return { id: msg.id! };
  }
}

function toPodInfo(c: ContainerMessage, containerdNamespace: string): PodInfo {
  const {
    [LABEL_POD_NAMESPACE]: namespace = '',
    [LABEL_POD_NAME]: podName = '',
    [LABEL_CONTAINER_NAME]: containerName = '',
    ...labels
  } = c.labels;
  const info: PodInfo = { containerId: c.id, namespace, podName, containerName, image: c.image, labels, containerdNamespace };
  if (c.created_at) info.createdAt = new Date(c.created_at.seconds * 1000 + Math.floor(c.created_at.nanos / 1e6));
  return info;
}

function samePodInfo(a: PodInfo, b: PodInfo): boolean {
  const keys = Object.keys(a.labels);
  return a.namespace === b.namespace && a.podName === b.podName && a.containerName === b.containerName
    && a.image === b.image && a.containerdNamespace === b.containerdNamespace
    && a.createdAt?.getTime() === b.createdAt?.getTime()
    && keys.length === Object.keys(b.labels).length && keys.every((k) => a.labels[k] === b.labels[k]);
}

function isNotFound(err: unknown): boolean {
  return (err as grpc.ServiceError | undefined)?.code === grpc.status.NOT_FOUND;
}

export class ContainerdMetadata {
  private readonly client: grpc.Client;
  private readonly rpc = methods();
  private readonly log: (line: string) => void;
  private readonly callTimeoutMs: number;
  /**
   * Every change to the cache takes the next sequence number. A call's answer
   * is applied only if nothing newer about that container happened while the
   * call was in flight (an event fetch racing a delete, a re-list racing both).
   */
  private seq = 0;
  private readonly cache = new Map<string, { info: PodInfo; seq: number }>();
  private readonly dropped = new Map<string, { seq: number; at: number }>();
  /** Containers whose init process exited: re-lists still report them, but they have no processes left. */
  private readonly exited = new Set<string>();
  private readonly resolving = new Map<string, Promise<PodInfo | undefined>>();
  private readonly listeners = new Set<ChangeListener>();
  private stream: grpc.ClientReadableStream<EnvelopeMessage> | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly refreshTimer: NodeJS.Timeout;
  private backoffMs = RECONNECT_MIN_MS;
  private closed = false;

  private constructor(socket: string, private readonly opts: ContainerdMetadataOptions) {
    this.log = opts.log ?? (() => {});
    this.callTimeoutMs = opts.callTimeoutMs ?? 10_000;
    this.client = new grpc.Client(`unix://${socket}`, grpc.credentials.createInsecure(), {
      // A List answer carries every container; containerd's own client allows 16 MiB.
      'grpc.max_receive_message_length': 64 << 20,
      // Come back quickly after containerd restarts (grpc-js would wait up to 2 minutes).
      'grpc.initial_reconnect_backoff_ms': RECONNECT_MIN_MS,
      'grpc.max_reconnect_backoff_ms': RECONNECT_MAX_MS,
    });
    this.refreshTimer = setInterval(() => {
      this.refresh().catch((err: unknown) => this.log(`containerd: re-list failed: ${String(err)}`));
    }, opts.refreshMs ?? 30_000);
    this.refreshTimer.unref();
  }

  /**
   * Connects, subscribes to events and lists every container. Rejects if the
   * first list fails (containerd not there); after that, outages are ridden out.
   */
  static async connect(socket = '/run/containerd/containerd.sock', opts: ContainerdMetadataOptions = {}): Promise<ContainerdMetadata> {
    const md = new ContainerdMetadata(socket, opts);
    // Subscribe before listing, so that nothing happening in between is missed.
    md.subscribe();
    try {
      await md.refresh();
    } catch (err) {
      md.close();
      throw new Error(`containerd at ${socket}: ${String(err)}`);
    }
    return md;
  }

  /** What is cached about a container, without asking containerd. */
  lookup(containerId: string): PodInfo | undefined {
    return this.cache.get(containerId)?.info;
  }

  /** The cached metadata, or else containerd's answer now (for a container seen before its event arrived). */
  async resolve(containerId: string): Promise<PodInfo | undefined> {
    const cached = this.lookup(containerId);
    if (cached !== undefined) return cached;
    // Lookups of a new container's processes come in bursts: one question to containerd for all of them.
    let pending = this.resolving.get(containerId);
    if (pending === undefined) {
      pending = this.fetch(containerId, undefined).finally(() => this.resolving.delete(containerId));
      this.resolving.set(containerId, pending);
    }
    return pending;
  }

  /** Calls `cb` when a container appears or changes, and with undefined when it is gone. Returns the unsubscribe function. */
  onChange(cb: ChangeListener): () => void {
    this.listeners.add(cb);
    return () => { this.listeners.delete(cb); };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.refreshTimer);
    clearTimeout(this.reconnectTimer);
    this.stream?.cancel();
    this.client.close();
    this.listeners.clear();
  }

  private metadata(namespace?: string): grpc.Metadata {
    const md = new grpc.Metadata();
    if (namespace !== undefined) md.set(NAMESPACE_HEADER, namespace);
    return md;
  }

  private call<Req, Res>(method: { path: string; req: Codec<Req>; res: Codec<Res> }, request: Req, namespace?: string): Promise<Res> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(method.path, method.req.serialize, method.res.deserialize, request, this.metadata(namespace),
        { deadline: Date.now() + this.callTimeoutMs }, (err, value) => (err ? reject(err) : resolve(value!)));
    });
  }

  private async namespaces(): Promise<string[]> {
    if (this.opts.namespaces !== undefined) return this.opts.namespaces;
    const { namespaces } = await this.call(this.rpc.namespaces, { filter: '' });
    return namespaces.map((ns) => ns.name);
  }

  private followed(namespace: string): boolean {
    return this.opts.namespaces === undefined || this.opts.namespaces.includes(namespace);
  }

  private notify(id: string, info: PodInfo | undefined): void {
    for (const cb of this.listeners) {
      try {
        cb(id, info);
      } catch (err) {
        this.log(`containerd: onChange listener failed: ${String(err)}`);
      }
    }
  }

  /** Caches `info` unless something newer than `since` happened to the container. */
  private upsert(info: PodInfo, since: number): void {
    const id = info.containerId;
    const current = this.cache.get(id);
    if ((this.dropped.get(id)?.seq ?? -1) > since || (current?.seq ?? -1) > since) return;
    this.cache.set(id, { info, seq: ++this.seq });
    if (current === undefined || !samePodInfo(current.info, info)) this.notify(id, info);
  }

  private drop(id: string): void {
    this.dropped.set(id, { seq: ++this.seq, at: Date.now() });
    if (this.cache.delete(id)) this.notify(id, undefined);
  }

  /**
   * Gets one container from containerd (from `namespace`, or whichever
   * followed namespace has it) and caches it. Event-driven fetches always ask
   * anew (an update must not join an older fetch); upsert() orders the answers.
   */
  private async fetch(id: string, namespace: string | undefined): Promise<PodInfo | undefined> {
    const since = this.seq;
    for (const ns of namespace !== undefined ? [namespace] : await this.namespaces()) {
      try {
        const { container } = await this.call(this.rpc.get, { id }, ns);
        if (!container) continue;
        this.upsert(toPodInfo(container, ns), since);
        return this.lookup(id);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    return undefined;
  }

  /** Lists every container of the followed namespaces and brings the cache in line. */
  private async refresh(): Promise<void> {
    const since = this.seq;
    const seen = new Map<string, PodInfo>();
    for (const ns of await this.namespaces()) {
      const { containers } = await this.call(this.rpc.list, { filters: [] }, ns);
      for (const c of containers) seen.set(c.id, toPodInfo(c, ns));
    }
    if (this.closed) return;
    for (const [id, entry] of this.cache) {
      if (!seen.has(id) && entry.seq <= since) this.drop(id);
    }
    for (const id of this.exited) if (!seen.has(id)) this.exited.delete(id);
    for (const info of seen.values()) {
      if (!this.exited.has(info.containerId)) this.upsert(info, since);
    }
    const now = Date.now();
    for (const [id, { at }] of this.dropped) if (now - at > DROP_MEMORY_MS) this.dropped.delete(id);
    this.backoffMs = RECONNECT_MIN_MS;
  }

  private subscribe(): void {
    const filters = TOPICS.map((topic) => `topic=="${topic}"`);
    const { path: method, req, res } = this.rpc.subscribe;
    const stream = this.client.makeServerStreamRequest(method, req.serialize, res.deserialize, { filters }, this.metadata());
    this.stream = stream;
    let ended = false;
    const onEnd = (why: string): void => {
      if (ended || this.closed) return;
      ended = true;
      this.log(`containerd: event stream ended (${why}); resubscribing in ${this.backoffMs} ms`);
      this.reconnectTimer = setTimeout(() => this.reconnect(), this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, RECONNECT_MAX_MS);
    };
    stream.on('data', (envelope: EnvelopeMessage) => {
      try {
        this.onEvent(envelope);
      } catch (err) {
        this.log(`containerd: bad event on ${envelope.topic}: ${String(err)}`);
      }
    });
    stream.on('error', (err: Error) => onEnd(err.message));
    stream.on('end', () => onEnd('closed by containerd'));
  }

  private reconnect(): void {
    if (this.closed) return;
    this.subscribe();
    // Whatever happened while the stream was down shows up in a fresh list.
    this.refresh().catch((err: unknown) => this.log(`containerd: re-list after reconnect failed: ${String(err)}`));
  }

  private onEvent(envelope: EnvelopeMessage): void {
    if (!this.followed(envelope.namespace)) return;
    const target = eventContainerId(envelope);
    if (target === undefined || target.id === '') return;
    const { id } = target;
    switch (envelope.topic) {
      case TOPIC_CONTAINER_CREATE:
      case TOPIC_CONTAINER_UPDATE:
        this.fetchLogged(id, envelope.namespace);
        break;
      case TOPIC_TASK_START:
        this.exited.delete(id);
        if (!this.cache.has(id)) this.fetchLogged(id, envelope.namespace);
        break;
      case TOPIC_TASK_EXIT:
        if (target.initExit) {
          this.exited.add(id);
          this.drop(id);
        }
        break;
      case TOPIC_CONTAINER_DELETE:
        this.exited.delete(id);
        this.drop(id);
        break;
    }
  }

  private fetchLogged(id: string, namespace: string): void {
    this.fetch(id, namespace).catch((err: unknown) => this.log(`containerd: get ${namespace}/${id} failed: ${String(err)}`));
  }
}
