/**
 * vigil.v1.SensorControlService (proto/vigil/v1/control.proto): the sensor's
 * control API over gRPC, for the split shape. The sensor serves its
 * SensorPolicyControl with `sensorControlService`; the enforcer programs a
 * remote sensor through `RemoteSensorControl`, which is a SensorPolicyControl
 * too, so the policy store is the same code in both shapes.
 *
 * Policy counters come with the sensor's periodic stats on the bus, not by
 * RPC, so `policyStats` stays synchronous.
 */
import * as grpc from '@grpc/grpc-js';
import type { Bus, SensorStatsMessage } from './bus.js';
import type { ArgMatch, ArgSpec, Hook, LabelSelector, PolicyMode, PolicyProgram, PolicyScope, Selector } from './policy-program.js';
import { PolicyLoadError, type PolicyKernelStats, type SensorPolicyControl } from './sensor-control.js';
import { grpcServiceDefinition } from './tetragon-proto.js';

export const CONTROL_SERVICE = 'vigil.v1.SensorControlService';

/* eslint-disable @typescript-eslint/no-explicit-any -- proto messages are plain decoded objects */
type Msg = Record<string, any>;

const MODE_NUMBER: Record<PolicyMode, number> = { enforce: 1, monitor: 2 };
const modeFromNumber = (n: number): PolicyMode => (n === 2 ? 'monitor' : 'enforce');

function argSpecToProto(a: ArgSpec): Msg {
  const s = a.source;
  return {
    source: s.kind, type: a.type,
    ...(s.kind === 'syscall_arg' || s.kind === 'function_arg' ? { index: s.index } : {}),
    ...(s.kind === 'usdt' ? { index: s.register, size: s.size, signed: s.signed, ...(s.displacement !== undefined && { displacement: s.displacement }) } : {}),
    ...(s.kind === 'tracepoint_field' ? { offset: s.offset, size: s.size, signed: s.signed, data_loc: s.dataLoc ?? false } : {}),
    ...(s.kind === 'constant' ? { constant: s.value } : {}),
    ...(s.kind === 'btf_arg' ? { index: s.index, ...(s.field && { resolve_derefs: s.field.derefs, resolve_offset: s.field.offset, size: s.field.size, signed: s.field.signed }) } : {}),
    ...(a.wireType && { wire_type: a.wireType }),
    ...(a.hidden && { hidden: true }),
    ...(a.sizeArgIndex !== undefined && { size_arg_index: a.sizeArgIndex }),
    resolve_from_returned_fd: a.resolveFromReturnedFd ?? false,
    ...(a.label && { label: a.label }),
    ...(a.sockFrom && { sock_from: a.sockFrom }),
  };
}

function argSpecFromProto(m: Msg): ArgSpec {
  const source: ArgSpec['source'] = m.source === 'syscall_arg' ? { kind: 'syscall_arg', index: m.index ?? 0 }
    : m.source === 'function_arg' ? { kind: 'function_arg', index: m.index ?? 0 }
      : m.source === 'usdt' ? { kind: 'usdt', register: m.index ?? 0, size: m.size ?? 8, signed: m.signed ?? false, ...(m.displacement !== undefined && m.displacement !== null && { displacement: m.displacement }) }
      : m.source === 'tracepoint_field' ? { kind: 'tracepoint_field', offset: m.offset ?? 0, size: m.size ?? 0, signed: m.signed ?? false, dataLoc: m.data_loc ?? false }
        : m.source === 'constant' ? { kind: 'constant', value: m.constant ?? 0 }
          : m.source === 'btf_arg' ? {
            kind: 'btf_arg', index: m.index ?? 0,
            ...(m.resolve_offset !== undefined && m.resolve_offset !== null && { field: { derefs: m.resolve_derefs ?? [], offset: m.resolve_offset, size: m.size ?? 0, signed: m.signed ?? false } }),
          }
            : { kind: 'return' };
  return {
    source, type: m.type,
    ...(m.size_arg_index !== undefined && m.size_arg_index !== null && { sizeArgIndex: m.size_arg_index }),
    ...(m.resolve_from_returned_fd && { resolveFromReturnedFd: true }),
    ...(m.label && { label: m.label }),
    ...(m.wire_type && { wireType: m.wire_type }),
    ...(m.hidden && { hidden: true }),
    ...((m.sock_from === 'fd' || m.sock_from === 'skb') && { sockFrom: m.sock_from }),
  };
}

function argMatchToProto(m: ArgMatch): Msg {
  const head = { arg_index: m.argIndex, kind: m.kind, op: m.op };
  switch (m.kind) {
    case 'string': return { ...head, string_values: m.values };
    case 'address': return { ...head, field: m.field, prefixes: m.prefixes.map((p) => ({ address: Uint8Array.from(p.address), bits: p.bits })) };
    case 'net': return { ...head, field: m.field, numeric_values: m.values.map(String) };
    default: return { ...head, numeric_values: m.values.map(String) };
  }
}

function argMatchFromProto(m: Msg): ArgMatch {
  const argIndex = m.arg_index ?? 0;
  const numbers = (): bigint[] => (m.numeric_values ?? []).map((v: unknown) => BigInt(String(v)));
  switch (m.kind) {
    case 'string': return { argIndex, kind: 'string', op: m.op, values: m.string_values ?? [] };
    case 'address': return { argIndex, kind: 'address', field: m.field, op: m.op, prefixes: (m.prefixes ?? []).map((p: Msg) => ({ address: [...(p.address ?? [])], bits: p.bits ?? 0 })) };
    case 'net': return { argIndex, kind: 'net', field: m.field, op: m.op, values: numbers() };
    default: return { argIndex, kind: 'numeric', op: m.op, values: numbers() };
  }
}

function selectorToProto(s: Selector): Msg {
  return {
    match_pids: s.matchPIDs.map((p) => ({ op: p.op, values: p.values, is_namespace_pid: p.isNamespacePID, follow_forks: p.followForks })),
    match_args: s.matchArgs.map(argMatchToProto),
    match_return_args: s.matchReturnArgs.map(argMatchToProto),
    match_binaries: s.matchBinaries.map((b) => ({ op: b.op, values: b.values, follow_children: b.followChildren })),
    match_namespaces: s.matchNamespaces.map((n) => ({ namespace: n.namespace, op: n.op, values: n.values })),
    match_namespace_changes: s.matchNamespaceChanges.map((n) => ({ op: n.op, namespaces: n.namespaces })),
    match_capabilities: s.matchCapabilities.map((c) => ({ type: c.type, op: c.op, mask: c.mask.toString(), is_namespace_capability: c.isNamespaceCapability })),
    match_capability_changes: s.matchCapabilityChanges.map((c) => ({ type: c.type, op: c.op, mask: c.mask.toString(), is_namespace_capability: c.isNamespaceCapability })),
    match_actions: s.matchActions.map((a) => ({ action: a.action, ...(a.signal !== undefined && { signal: a.signal }), ...(a.rateLimitMs !== undefined && { rate_limit_ms: a.rateLimitMs }),
      ...(a.error !== undefined && { error: a.error }), ...(a.argSock !== undefined && { arg_sock: a.argSock }),
      ...(a.fqdn !== undefined && { fqdn: a.fqdn }), ...(a.url !== undefined && { url: a.url }),
      ...(a.kernelStackTrace && { kernel_stack_trace: true }), ...(a.userStackTrace && { user_stack_trace: true }) })),
  };
}

function selectorFromProto(m: Msg): Selector {
  const caps = (list: Msg[] | undefined) => (list ?? []).map((c) => ({ type: c.type, op: c.op, mask: BigInt(String(c.mask ?? 0)), isNamespaceCapability: c.is_namespace_capability ?? false }));
  return {
    matchPIDs: (m.match_pids ?? []).map((p: Msg) => ({ op: p.op, values: p.values ?? [], isNamespacePID: p.is_namespace_pid ?? false, followForks: p.follow_forks ?? false })),
    matchArgs: (m.match_args ?? []).map(argMatchFromProto),
    matchReturnArgs: (m.match_return_args ?? []).map(argMatchFromProto),
    matchBinaries: (m.match_binaries ?? []).map((b: Msg) => ({ op: b.op, values: b.values ?? [], followChildren: b.follow_children ?? false })),
    matchNamespaces: (m.match_namespaces ?? []).map((n: Msg) => ({ namespace: n.namespace, op: n.op, values: n.values ?? [] })),
    matchNamespaceChanges: (m.match_namespace_changes ?? []).map((n: Msg) => ({ op: n.op, namespaces: n.namespaces ?? [] })),
    matchCapabilities: caps(m.match_capabilities),
    matchCapabilityChanges: caps(m.match_capability_changes),
    matchActions: (m.match_actions ?? []).map((a: Msg) => ({
      action: a.action,
      ...(a.signal !== undefined && a.signal !== null && { signal: a.signal }),
      ...(a.rate_limit_ms !== undefined && a.rate_limit_ms !== null && { rateLimitMs: a.rate_limit_ms }),
      ...(a.error !== undefined && a.error !== null && { error: a.error }),
      ...(a.arg_sock !== undefined && a.arg_sock !== null && { argSock: a.arg_sock }),
      ...(a.fqdn && { fqdn: a.fqdn }), ...(a.url && { url: a.url }),
      ...(a.kernel_stack_trace && { kernelStackTrace: true }), ...(a.user_stack_trace && { userStackTrace: true }),
    })),
  };
}

function attachToProto(t: Hook['attach']): Msg {
  switch (t.kind) {
    case 'syscall': return { syscall: { syscall: t.syscall, number: t.number } };
    case 'tracepoint': return { tracepoint: { subsystem: t.subsystem, event: t.event, ...(t.btf && { btf: true }) } };
    case 'uprobe': return { uprobe: { path: t.path, ...(t.file && { file: t.file }), symbol: t.symbol, return: t.return, ...(t.offset && { offset: t.offset }), ...(t.refCtrOffset && { ref_ctr_offset: t.refCtrOffset }) } };
    case 'cgroup': return { cgroup: { program: t.program } };
  }
}

function hookToProto(h: Hook): Msg {
  const t = h.attach;
  return {
    kind: h.kind, name: h.name,
    ...attachToProto(t),
    args: h.args.map(argSpecToProto),
    ...(h.returnArg && { return_arg: argSpecToProto(h.returnArg) }),
    ...(h.returnArgAction && { return_arg_action: h.returnArgAction }),
    ...(h.syscallNames && { syscall_names: h.syscallNames }),
    ...(h.guard && { guard: { arg: argSpecToProto(h.guard.arg), op: h.guard.op, value: h.guard.value } }),
    at_exit: h.atExit,
    selectors: h.selectors.map(selectorToProto),
    ...(h.subsystem && { subsystem: h.subsystem }),
    ...(h.message && { message: h.message }),
    tags: h.tags ?? [],
  };
}

function hookFromProto(m: Msg): Hook {
  const attach: Hook['attach'] = m.syscall ? { kind: 'syscall', syscall: m.syscall.syscall, number: m.syscall.number ?? 0 }
    : m.tracepoint ? { kind: 'tracepoint', subsystem: m.tracepoint.subsystem, event: m.tracepoint.event, ...(m.tracepoint.btf && { btf: true }) }
      : m.cgroup ? { kind: 'cgroup', program: m.cgroup.program }
      : {
        kind: 'uprobe', path: m.uprobe?.path ?? '', ...(m.uprobe?.file && { file: m.uprobe.file }), symbol: m.uprobe?.symbol ?? '', return: m.uprobe?.return ?? false,
        ...(m.uprobe?.offset && { offset: Number(m.uprobe.offset) }), ...(m.uprobe?.ref_ctr_offset && { refCtrOffset: Number(m.uprobe.ref_ctr_offset) }),
      };
  return {
    kind: m.kind, name: m.name, attach,
    args: (m.args ?? []).map(argSpecFromProto),
    ...(m.return_arg && { returnArg: argSpecFromProto(m.return_arg) }),
    ...((m.return_arg_action === 'TrackSock' || m.return_arg_action === 'UntrackSock') && { returnArgAction: m.return_arg_action }),
    ...(m.syscall_names?.length && { syscallNames: m.syscall_names }),
    ...(m.guard && { guard: { arg: argSpecFromProto(m.guard.arg ?? {}), op: m.guard.op, value: Number(m.guard.value ?? 0) } }),
    atExit: m.at_exit ?? false,
    selectors: (m.selectors ?? []).map(selectorFromProto),
    ...(m.subsystem && { subsystem: m.subsystem }),
    ...(m.message && { message: m.message }),
    ...(m.tags?.length && { tags: m.tags }),
  };
}

const labelSelectorToProto = (s: LabelSelector): Msg => ({ match_labels: s.matchLabels ?? {}, match_expressions: s.matchExpressions ?? [] });
const labelSelectorFromProto = (m: Msg): LabelSelector => ({
  ...(m.match_labels && Object.keys(m.match_labels).length > 0 && { matchLabels: m.match_labels }),
  ...(m.match_expressions?.length && { matchExpressions: m.match_expressions.map((e: Msg) => ({ key: e.key, operator: e.operator, values: e.values ?? [] })) }),
});

function scopeToProto(s: PolicyScope): Msg {
  return {
    ...(s.namespace !== undefined && { namespace: s.namespace }),
    ...(s.podSelector && { pod_selector: labelSelectorToProto(s.podSelector) }),
    ...(s.containerSelector && { container_selector: labelSelectorToProto(s.containerSelector) }),
  };
}

function scopeFromProto(m: Msg): PolicyScope {
  return {
    ...(m.namespace !== undefined && m.namespace !== null && { namespace: m.namespace }),
    ...(m.pod_selector && { podSelector: labelSelectorFromProto(m.pod_selector) }),
    ...(m.container_selector && { containerSelector: labelSelectorFromProto(m.container_selector) }),
  };
}

export function programToProto(p: PolicyProgram): Msg {
  return {
    name: p.name, ...(p.namespace && { namespace: p.namespace }), mode: MODE_NUMBER[p.mode], hooks: p.hooks.map(hookToProto),
    ...(p.scope && { scope: scopeToProto(p.scope) }),
  };
}

export function programFromProto(m: Msg): PolicyProgram {
  return {
    name: m.name, ...(m.namespace && { namespace: m.namespace }), mode: modeFromNumber(m.mode ?? 1), hooks: (m.hooks ?? []).map(hookFromProto),
    ...(m.scope && { scope: scopeFromProto(m.scope) }),
  };
}
/* eslint-enable @typescript-eslint/no-explicit-any */

/** A failed control call as a gRPC status: refusals are FAILED_PRECONDITION with the reason. */
function statusOf(err: unknown): Partial<grpc.StatusObject> {
  if (err instanceof PolicyLoadError) return { code: grpc.status.FAILED_PRECONDITION, details: err.message };
  return { code: grpc.status.INTERNAL, details: err instanceof Error ? err.message : String(err) };
}

/** Adds the control service, backed by `control`, to a gRPC server. */
export function addSensorControlService(server: grpc.Server, control: SensorPolicyControl & { loaded(): string[] }): void {
  const handle = (fn: (req: Msg) => Promise<Msg> | Msg): grpc.handleUnaryCall<Msg, Msg> => (call, callback) => {
    Promise.resolve().then(() => fn(call.request)).then((res) => callback(null, res), (err: unknown) => callback(statusOf(err)));
  };
  server.addService(grpcServiceDefinition(CONTROL_SERVICE), {
    LoadPolicy: handle(async (req) => { await control.loadPolicy(programFromProto(req.program ?? {})); return {}; }),
    UnloadPolicy: handle(async (req) => { await control.unloadPolicy(req.name); return {}; }),
    SetPolicyMode: handle(async (req) => { await control.setPolicyMode(req.name, modeFromNumber(req.mode)); return {}; }),
    SetPolicyEnabled: handle(async (req) => { await control.setPolicyEnabled(req.name, req.enabled ?? false); return {}; }),
    GetPolicyStats: handle((req) => {
      const s = control.policyStats(req.name);
      return { matched: s.matched, actions_applied: s.actionsApplied, actions_monitored: s.actionsMonitored, rate_limited: s.rateLimited };
    }),
    ListLoadedPolicies: handle(() => ({ names: control.loaded() })),
  });
}

/** The enforcer's handle on a sensor in another process. */
export class RemoteSensorControl implements SensorPolicyControl {
  private readonly client: grpc.Client;
  private readonly methods = grpcServiceDefinition(CONTROL_SERVICE);
  private latest = new Map<string, PolicyKernelStats>();
  private readonly unsubscribe: () => void;

  /** `address`: `unix:///path` or host:port. Counters follow the stats the sensor publishes on `bus`. */
  constructor(address: string, bus: Bus, private readonly node: string) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure());
    this.unsubscribe = bus.subscribeStats((stats) => this.onStats(stats));
  }

  loadPolicy(program: PolicyProgram): Promise<void> {
    return this.call('LoadPolicy', { program: programToProto(program) }, program.name);
  }

  unloadPolicy(name: string): Promise<void> {
    return this.call('UnloadPolicy', { name }, name);
  }

  setPolicyMode(name: string, mode: PolicyMode): Promise<void> {
    return this.call('SetPolicyMode', { name, mode: MODE_NUMBER[mode] }, name);
  }

  setPolicyEnabled(name: string, enabled: boolean): Promise<void> {
    return this.call('SetPolicyEnabled', { name, enabled }, name);
  }

  policyStats(name: string): PolicyKernelStats {
    return this.latest.get(name) ?? { matched: 0, actionsApplied: 0, actionsMonitored: 0, rateLimited: 0 };
  }

  /** Names the sensor has loaded now (empty after a sensor restart). */
  async loaded(): Promise<string[]> {
    const res = await this.unary('ListLoadedPolicies', {});
    return (res.names as string[] | undefined) ?? [];
  }

  /** Resolves once the sensor answers (waits for it to come up). */
  waitForReady(deadlineMs: number): Promise<void> {
    return new Promise((resolve, reject) => this.client.waitForReady(Date.now() + deadlineMs, (err) => (err ? reject(err) : resolve())));
  }

  close(): void {
    this.unsubscribe();
    this.client.close();
  }

  private onStats(stats: SensorStatsMessage): void {
    if (stats.node !== this.node) return;
    this.latest = new Map(stats.policies.map((p) => [p.name, { matched: p.matched, actionsApplied: p.actionsApplied, actionsMonitored: p.actionsMonitored, rateLimited: p.rateLimited }]));
  }

  private async call(method: string, request: object, policy: string): Promise<void> {
    try {
      await this.unary(method, request);
    } catch (err) {
      const e = err as grpc.ServiceError;
      if (e.code === grpc.status.FAILED_PRECONDITION) throw new PolicyLoadError(policy, e.details.replace(/^policy [^:]+: /, ''));
      throw new PolicyLoadError(policy, `sensor control ${method} failed: ${e.details ?? e.message}`, { cause: err });
    }
  }

  private unary(method: string, request: object): Promise<Record<string, unknown>> {
    const m = this.methods[method]!;
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, request, new grpc.Metadata(),
        { deadline: Date.now() + 30_000 }, (err, res) => (err ? reject(err) : resolve(res as Record<string, unknown>)));
    });
  }
}

/** The methods of tetragon.FineGuidanceSensors the enforcer serves; in the split shape the sensor forwards them. */
export const POLICY_METHODS = [
  'AddTracingPolicy', 'DeleteTracingPolicy', 'ListTracingPolicies', 'ConfigureTracingPolicy', 'EnableTracingPolicy',
  'DisableTracingPolicy', 'ListDomains', 'ListSensors', 'EnableSensor', 'DisableSensor', 'RemoveSensor',
] as const;
