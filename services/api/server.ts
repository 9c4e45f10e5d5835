/**
 * The public gRPC API: tetragon.FineGuidanceSensors, wire-compatible with
 * Tetragon so that `tetra` and other Tetragon clients work unchanged, plus
 * grpc.health.v1 and server reflection (v1 and v1alpha).
 *
 * Every rpc of the service is registered; those without an implementation
 * answer UNIMPLEMENTED, and later parts (policies) plug theirs in with
 * addMethods(). Served here: GetEvents, GetHealth, GetVersion.
 *
 * GetEvents streams the bus's events through each request's allow/deny lists
 * (filters.ts) and field filters (services/lib/field-filters.ts). Encode once: an event
 * goes to a subscriber without field filters as the very bytes the sensor
 * encoded (the serializer passes bytes through); subscribers with the same
 * field filters share one masked encoding per event (shared-encodings.ts).
 * Each subscriber has its own queue, bounded in events and in bytes
 * (subscriber.ts), so a slow client only loses its own events. The streams
 * open at once are bounded (maxSubscribers), as are each request's filters
 * (event-filters.ts, field-filters.ts): every stream's filters run for every
 * event on the event loop.
 * aggregation_options is accepted and ignored: Tetragon aggregates no event
 * type that Vigil emits, so its output is unaggregated too.
 *
 * Listeners and who may change policies (authorization.ts has the rule):
 * each listener is its own grpc.Server, so a call's listener is known. The
 * TCP listener is plaintext, or TLS with `tls` (mutual TLS when tls.clientCa
 * is given: the handshake then refuses a client without a certificate signed
 * by that CA); GetEvents and every other rpc ride the same transport. The
 * unix socket is bound under umask 0177 and then set to mode 0600 (0660 with
 * unixSocketGroup, chowned to that group), so only its owner (root) or that
 * group can connect. A refused call is answered PERMISSION_DENIED or
 * UNAUTHENTICATED, counted (stats().refusedCalls) and published as an audit
 * record (action "policy-change-refused", details naming the method and the
 * peer).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import type { Bus, EventEnvelope } from '../lib/bus.js';
import { protoDir } from '../lib/paths.js';
import { fineGuidanceSensorsDefinition, tetragonProtoFiles } from '../lib/tetragon-proto.js';
import { FieldFilterError, type FieldFilterMessage } from '../lib/field-filters.js';
import { compileEventFilter, InvalidArgumentError, type FilterMessage } from '../lib/event-filters.js';
import { DEFAULT_MAX_QUEUE_BYTES, Subscriber, type SubscriberStats } from './subscriber.js';
import { SharedEncodings } from './shared-encodings.js';
import { DEFAULT_SERVER_ADDRESS, DEFAULT_SERVER_UNIX_SOCKET } from '../lib/defaults.js';
import { authorize, describeOrigin, groupId, tcpOrigin, type CallOrigin } from './authorization.js';

/** What GetHealth reports. */
export interface HealthReport {
  status: 'running' | 'stopped' | 'error';
  details?: string;
}

export interface PublicApiOptions {
  /** host:port; default DEFAULT_SERVER_ADDRESS (Tetragon's); port 0 picks a free port; '' disables TCP. */
  tcpAddress?: string;
  /** Default DEFAULT_SERVER_UNIX_SOCKET; '' disables the socket. */
  unixSocket?: string;
  version: string;
  nodeName: string;
  /** Events a subscriber may have waiting before new ones are dropped; default 10000 (Tetragon's queue size). */
  maxSubscriberQueue?: number;
  /** Bytes a subscriber may have waiting before new events are dropped; default 8 MiB (DEFAULT_MAX_QUEUE_BYTES). */
  maxSubscriberQueueBytes?: number;
  /** GetEvents streams open at once, over both listeners; one more is RESOURCE_EXHAUSTED. Default 64 (DEFAULT_MAX_SUBSCRIBERS). */
  maxSubscribers?: number;
  /** Default: always running. */
  health?: () => HealthReport;
  /** TLS on the TCP listener (PEM); with clientCa, mutual TLS. Default: plaintext. */
  tls?: ServerTlsOptions;
  /** Group (name or gid) allowed to connect to the unix socket: mode 0660 and that group. Default: none, mode 0600. */
  unixSocketGroup?: string;
  /**
   * Allow policy changes over TCP without a verified client certificate.
   * Default true (Tetragon's behaviour) for embedding in tests; the `vigil`
   * commands always set it, false unless --server-insecure-policy-changes.
   */
  insecureTcpPolicyChanges?: boolean;
}

/** PEM contents of the TCP listener's TLS files. */
export interface ServerTlsOptions {
  cert: Buffer;
  key: Buffer;
  /** CA that client certificates must chain to; every client must present one. */
  clientCa?: Buffer;
}

export interface PublicApiStats {
  subscribers: SubscriberStats[];
  droppedTotal: number;
  /** Calls refused by the authorisation rule (authorization.ts), by method. */
  refusedCalls: number;
  refusedByMethod: Record<string, number>;
  /** Field-filtered encodings made: one per event and distinct field filters, however many subscribers share them. */
  fieldFilterEncodes: number;
}

const SERVICE = 'tetragon.FineGuidanceSensors';
/** GetEvents streams served at once by default: far above what tetra and exporters open, far below what would starve the event loop. */
export const DEFAULT_MAX_SUBSCRIBERS = 64;
/** tetragon.HealthStatusType.HEALTH_STATUS_TYPE_STATUS */
const HEALTH_STATUS_TYPE_STATUS = 1;
/** Distinct types one GetHealth may ask for (tetragon.HealthStatusType has two). */
const MAX_HEALTH_TYPES = 16;
/** tetragon.HealthStatusResult by HealthReport status. */
const HEALTH_RESULT = { running: 1, stopped: 2, error: 3 } as const;
/** How long stop() lets streams end before cutting connections. */
const SHUTDOWN_GRACE_MS = 2000;

interface GetEventsRequest {
  allow_list?: FilterMessage[];
  deny_list?: FilterMessage[];
  field_filters?: FieldFilterMessage[];
}

interface Subscription {
  subscriber: Subscriber;
  call: grpc.ServerWritableStream<GetEventsRequest, unknown>;
  accept: (envelope: EventEnvelope) => boolean;
  /** The key of its field filters in the shared encodings; undefined without field filters. */
  fields: string | undefined;
}

/** A handler of any method (grpc-js's HandleCall<any, any>). */
type AnyHandler = grpc.UntypedHandleCall;
type AnyCallback = grpc.sendUnaryData<unknown>;

/**
 * A request whose bytes did not decode. grpc-js answers INTERNAL when a
 * deserializer throws; the server's deserializers return this instead, and
 * the dispatcher answers INVALID_ARGUMENT (the client's bytes are at fault).
 */
class UndecodableRequest {
  constructor(readonly reason: string) {}
}

/** The definition with each single-request method's deserializer returning UndecodableRequest instead of throwing. */
function decodeSafely(definition: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(definition) as [string, grpc.MethodDefinition<unknown, unknown>][]) {
    const deserialize = method.requestDeserialize;
    out[name] = method.requestStream ? method : {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return deserialize(bytes);
        } catch (err) {
          return new UndecodableRequest(err instanceof Error ? err.message : String(err));
        }
      },
    };
  }
  return out;
}

/** Package definition of proto/tetragon and grpc.health.v1, for reflection. */
function reflectionPackage(): protoLoader.PackageDefinition {
  // health/v1/health.proto lives under <package>/proto/.
  const healthRoot = path.resolve(path.dirname(healthProtoPath), '..', '..');
  return protoLoader.loadSync([...tetragonProtoFiles, path.relative(healthRoot, healthProtoPath)], {
    includeDirs: [protoDir, healthRoot],
    keepCase: true,
  });
}

async function removeStaleSocket(socketPath: string): Promise<void> {
  await fs.mkdir(path.dirname(socketPath), { recursive: true });
  const stat = await fs.lstat(socketPath).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (stat === undefined) return;
  if (!stat.isSocket()) throw new Error(`${socketPath} exists and is not a socket`);
  await fs.unlink(socketPath);
}

function bind(server: grpc.Server, address: string, credentials = grpc.ServerCredentials.createInsecure()): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port)));
  });
}

function tcpCredentials(tls: ServerTlsOptions | undefined): grpc.ServerCredentials {
  if (tls === undefined) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(tls.clientCa ?? null, [{ cert_chain: tls.cert, private_key: tls.key }], tls.clientCa !== undefined);
}

/**
 * Binds the unix socket so that only its owner (and `group`) can connect: created
 * under umask 0177 (no window in which others may connect), then chmod/chown.
 */
async function bindPrivateSocket(server: grpc.Server, socketPath: string, group: string | undefined): Promise<void> {
  const gid = group === undefined ? undefined : groupId(group);
  const previous = process.umask(0o177);
  try {
    await bind(server, `unix:${socketPath}`);
  } finally {
    process.umask(previous);
  }
  if (gid !== undefined) await fs.chown(socketPath, process.geteuid?.() ?? 0, gid);
  await fs.chmod(socketPath, gid === undefined ? 0o600 : 0o660);
}

export class PublicApiServer {
  /** One grpc.Server per listener, so a call's listener is known. */
  private readonly tcpServer = new grpc.Server();
  private readonly unixServer = new grpc.Server();
  private readonly definition = fineGuidanceSensorsDefinition();
  private readonly handlers = new Map<string, AnyHandler>();
  private readonly subscriptions = new Map<string, Subscription>();
  private readonly healthService = new HealthImplementation({ '': 'SERVING', [SERVICE]: 'SERVING' });
  private readonly tcpAddress: string;
  private readonly unixSocket: string;
  private readonly maxQueue: number;
  private readonly maxQueueBytes: number;
  private readonly maxSubscribers: number;
  private readonly encodings = new SharedEncodings();
  private readonly health: () => HealthReport;
  private unsubscribeBus: (() => void) | undefined;
  private stopping = false;
  private nextId = 1;
  /** Drops of subscribers that have gone. */
  private droppedGone = 0;
  private readonly refused = new Map<string, number>();

  constructor(private readonly bus: Bus, private readonly opts: PublicApiOptions) {
    this.tcpAddress = opts.tcpAddress ?? DEFAULT_SERVER_ADDRESS;
    this.unixSocket = opts.unixSocket ?? DEFAULT_SERVER_UNIX_SOCKET;
    this.maxQueue = opts.maxSubscriberQueue ?? 10_000;
    this.maxQueueBytes = opts.maxSubscriberQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES;
    this.maxSubscribers = opts.maxSubscribers ?? DEFAULT_MAX_SUBSCRIBERS;
    this.health = opts.health ?? (() => ({ status: 'running' }));

    // Each rpc is bound to a dispatcher that looks its handler up per call, so addMethods works before and after start().
    const reflection = new ReflectionService(reflectionPackage());
    for (const [server, listener] of [[this.tcpServer, 'tcp'], [this.unixServer, 'unix']] as const) {
      const dispatchers: Record<string, AnyHandler> = {};
      for (const [name, method] of Object.entries(this.definition)) dispatchers[name] = this.dispatcher(name, method.path, listener);
      server.addService(decodeSafely(this.definition), dispatchers);
      this.healthService.addToServer(server);
      reflection.addToServer(server);
    }

    this.addMethods({
      GetEvents: (call: grpc.ServerWritableStream<GetEventsRequest, unknown>) => this.getEvents(call),
      GetHealth: (call: grpc.ServerUnaryCall<{ event_set?: number[] }, unknown>, callback: AnyCallback) => this.answerHealth(call.request, callback),
      GetVersion: (_call: grpc.ServerUnaryCall<unknown, unknown>, callback: AnyCallback) => callback(null, { version: this.opts.version }),
    });
  }

  /** Installs (or replaces) implementations by rpc name, e.g. { AddTracingPolicy: (call, callback) => ... }. */
  addMethods(impl: Partial<Record<string, AnyHandler>>): void {
    for (const [name, handler] of Object.entries(impl)) {
      if (!(name in this.definition)) throw new Error(`${SERVICE} has no method ${name}`);
      if (handler !== undefined) this.handlers.set(name, handler);
    }
  }

  async start(): Promise<{ tcpPort: number }> {
    const tcpPort = this.tcpAddress === '' ? 0 : await bind(this.tcpServer, this.tcpAddress, tcpCredentials(this.opts.tls));
    if (this.unixSocket !== '') {
      await removeStaleSocket(this.unixSocket);
      await bindPrivateSocket(this.unixServer, this.unixSocket, this.opts.unixSocketGroup);
    }
    return { tcpPort };
  }

  /** Ends every stream with UNAVAILABLE, closes the listeners and removes the socket file. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.healthService.setStatus('', 'NOT_SERVING');
    this.healthService.setStatus(SERVICE, 'NOT_SERVING');
    for (const [id, sub] of this.subscriptions) {
      this.retire(id);
      sub.call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'server is shutting down' });
    }
    await Promise.all([this.tcpServer, this.unixServer].map((server) => new Promise<void>((resolve) => {
      // Streams to clients that stopped reading never finish: cut them after a grace period.
      const timer = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, SHUTDOWN_GRACE_MS);
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    })));
    if (this.unixSocket !== '') await fs.rm(this.unixSocket, { force: true });
  }

  stats(): PublicApiStats {
    const subscribers = [...this.subscriptions.values()].map((s) => s.subscriber.stats());
    const refusedByMethod = Object.fromEntries(this.refused);
    return {
      subscribers,
      droppedTotal: subscribers.reduce((sum, s) => sum + s.dropped, this.droppedGone),
      refusedCalls: [...this.refused.values()].reduce((a, b) => a + b, 0),
      refusedByMethod,
      fieldFilterEncodes: this.encodings.encodes,
    };
  }

  private dispatcher(name: string, methodPath: string, listener: 'tcp' | 'unix'): AnyHandler {
    // One signature serves unary (call, callback) and streaming (call) methods alike.
    return ((call: grpc.ServerUnaryCall<unknown, unknown>, callback?: AnyCallback) => {
      const origin: CallOrigin = listener === 'unix' ? { listener } : tcpOrigin(call, this.opts.tls !== undefined);
      const decision = authorize(name, origin, { insecureTcpPolicyChanges: this.opts.insecureTcpPolicyChanges ?? true });
      if (!decision.allowed) {
        this.refuse(name, describeOrigin(origin, call.getPeer()), decision.message);
        const error = { code: decision.code, details: decision.message };
        if (callback !== undefined) callback(error);
        else call.emit('error', error);
        return;
      }
      if (call.request instanceof UndecodableRequest) {
        const error = { code: grpc.status.INVALID_ARGUMENT, details: `request could not be decoded: ${call.request.reason}` };
        if (callback !== undefined) callback(error);
        else call.emit('error', error);
        return;
      }
      const handler = this.handlers.get(name) as ((call: unknown, callback?: AnyCallback) => void) | undefined;
      if (handler !== undefined) {
        handler(call, callback);
        return;
      }
      const error = { code: grpc.status.UNIMPLEMENTED, details: `The server does not implement the method ${methodPath}` };
      if (callback !== undefined) callback(error);
      else call.emit('error', error);
    }) as AnyHandler;
  }

  /** Counts a refused call and audits it. */
  private refuse(method: string, peer: string, message: string): void {
    this.refused.set(method, (this.refused.get(method) ?? 0) + 1);
    this.bus.publishAudit({
      node: this.opts.nodeName, time: Date.now(), action: 'policy-change-refused', targets: [], outcome: 'done',
      details: `${method} from ${peer} refused: ${message}`,
    });
  }

  /** One status per distinct type asked for (at most MAX_HEALTH_TYPES: the answer is bounded by the request's types, not its bytes). */
  private answerHealth(request: { event_set?: number[] }, callback: AnyCallback): void {
    const report = this.health();
    const types = request.event_set !== undefined && request.event_set.length > 0 ? [...new Set(request.event_set)] : [HEALTH_STATUS_TYPE_STATUS];
    if (types.length > MAX_HEALTH_TYPES) {
      callback({ code: grpc.status.INVALID_ARGUMENT, details: `event_set: ${types.length} distinct types, more than the limit of ${MAX_HEALTH_TYPES}` });
      return;
    }
    callback(null, { health_status: types.map((event) => ({ event, status: HEALTH_RESULT[report.status], details: report.details ?? report.status })) });
  }

  private getEvents(call: grpc.ServerWritableStream<GetEventsRequest, unknown>): void {
    if (this.stopping) {
      call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'server is shutting down' });
      return;
    }
    if (this.subscriptions.size >= this.maxSubscribers) {
      // Each stream's filters run on the event loop for every event: their number is bounded too.
      call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: `${this.subscriptions.size} event streams are open, the most this server serves at once` });
      return;
    }
    let accept: Subscription['accept'];
    let fields: Subscription['fields'];
    try {
      accept = compileEventFilter(call.request);
      fields = this.encodings.acquire(call.request.field_filters);
    } catch (err) {
      if (!(err instanceof InvalidArgumentError || err instanceof FieldFilterError)) throw err;
      call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: err.message });
      return;
    }
    const id = String(this.nextId++);
    this.subscriptions.set(id, { subscriber: new Subscriber(id, call, this.maxQueue, this.maxQueueBytes), call, accept, fields });
    this.unsubscribeBus ??= this.bus.subscribeEvents((envelope) => this.fanOut(envelope));
    const gone = (): void => this.retire(id);
    call.on('cancelled', gone);
    call.on('close', gone);
  }

  private fanOut(envelope: EventEnvelope): void {
    for (const [id, { subscriber, call, accept, fields }] of this.subscriptions) {
      try {
        if (!accept(envelope)) continue;
        subscriber.offer(this.encodings.bytes(fields, envelope));
      } catch (err) {
        // A failure is this subscriber's alone: end its stream, keep serving the others.
        this.retire(id);
        call.emit('error', { code: grpc.status.INTERNAL, details: `event delivery failed: ${(err as Error).message}` });
      }
    }
  }

  /** Forgets a subscriber; the last one out leaves the bus. */
  private retire(id: string): void {
    const sub = this.subscriptions.get(id);
    if (sub === undefined) return;
    this.subscriptions.delete(id);
    sub.subscriber.close();
    this.encodings.release(sub.fields);
    this.droppedGone += sub.subscriber.dropped;
    if (this.subscriptions.size === 0 && this.unsubscribeBus !== undefined) {
      this.unsubscribeBus();
      this.unsubscribeBus = undefined;
    }
  }
}
