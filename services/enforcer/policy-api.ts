/**
 * The tracing-policy rpcs of tetragon.FineGuidanceSensors, served from the
 * PolicyStore; install with PublicApiServer.addMethods(policyMethods(store)).
 *
 * Status codes (Tetragon answers UNKNOWN for all of these): a policy that
 * does not parse or compile → INVALID_ARGUMENT with `[line N: ]path: reason`,
 * as is a text past the parser's bounds (compiler/parse.ts POLICY_LIMITS:
 * 1 MiB, 64 levels of nesting, 100,000 nodes with aliases expanded, yaml's
 * alias budget; compiler/parse-pool.ts: 2 s and 256 MiB in the parser thread);
 * an unknown policy → NOT_FOUND; a name already loaded → ALREADY_EXISTS; the
 * sensor's refusal, or enabling a policy that is not disabled (and the
 * reverse) → FAILED_PRECONDITION.
 *
 * An empty domain means "grpc", as in Tetragon (ListTracingPolicies: every
 * domain). The deprecated EnableTracingPolicy/DisableTracingPolicy are served
 * (Tetragon only behind a flag) and ListSensors answers as Tetragon did
 * before removing it; EnableSensor/DisableSensor/RemoveSensor, which Tetragon
 * also removed, answer UNIMPLEMENTED.
 */
import * as grpc from '@grpc/grpc-js';
import type { PolicyMode } from '../lib/policy-program.js';
import { tetragonRoot } from '../lib/tetragon-proto.js';
import { GRPC_DOMAIN, PolicyStoreError, type PolicyFailure, type PolicyRef, type PolicyStatus, type PolicyStore } from './policy-store.js';

const STATE = tetragonRoot.lookupEnum('tetragon.TracingPolicyState').values;
const MODE = tetragonRoot.lookupEnum('tetragon.TracingPolicyMode').values;
const HOOK_STATE = tetragonRoot.lookupEnum('tetragon.HookState').values;

const CODE: Record<PolicyFailure, grpc.status> = {
  invalid: grpc.status.INVALID_ARGUMENT,
  exists: grpc.status.ALREADY_EXISTS,
  not_found: grpc.status.NOT_FOUND,
  refused: grpc.status.FAILED_PRECONDITION,
  state: grpc.status.FAILED_PRECONDITION,
};

/** A request refused by the API layer itself. */
class StatusError extends Error {
  constructor(readonly code: grpc.status, message: string) {
    super(message);
  }
}

interface PolicyRequest { name?: string; namespace?: string; domain?: string }
interface ConfigureRequest extends PolicyRequest { enable?: boolean; mode?: number }

function toStatus(err: unknown): grpc.ServerErrorResponse | Partial<grpc.StatusObject> {
  if (err instanceof PolicyStoreError) return { code: CODE[err.kind], details: err.message };
  if (err instanceof StatusError) return { code: err.code, details: err.message };
  return { code: grpc.status.INTERNAL, details: err instanceof Error ? err.message : String(err) };
}

/** A unary handler from a function of the request; a throw or rejection becomes the call's status. */
function unary<Req>(handle: (request: Req) => object | Promise<object>): grpc.UntypedHandleCall {
  const handler: grpc.handleUnaryCall<Req, object> = (call, callback) => {
    Promise.resolve()
      .then(() => handle(call.request))
      .then((response) => callback(null, response), (err: unknown) => callback(toStatus(err)));
  };
  return handler;
}

function deprecated(method: string, instead: string): grpc.UntypedHandleCall {
  return unary(() => {
    throw new StatusError(grpc.status.UNIMPLEMENTED, `${method} is deprecated (removed from Tetragon); use ${instead}`);
  });
}

function ref(request: PolicyRequest): PolicyRef {
  return { name: request.name ?? '', namespace: request.namespace ?? '', domain: request.domain || GRPC_DOMAIN };
}

/**
 * A delete that names no namespace takes the namespaced policy of that name
 * in the domain (names are unique on a node): tetra v0.11 cannot send a
 * namespace, and Tetragon of its time deleted by name alone.
 */
function namespacedByName(store: PolicyStore, target: PolicyRef): PolicyRef {
  if (target.namespace !== '') return target;
  const same = store.list().filter((p) => p.domain === target.domain && p.name === target.name);
  return same.length === 1 ? { ...target, namespace: same[0]!.namespace } : target;
}

function policyMode(mode: number): PolicyMode {
  if (mode === MODE.TP_MODE_ENFORCE) return 'enforce';
  if (mode === MODE.TP_MODE_MONITOR) return 'monitor';
  const name = tetragonRoot.lookupEnum('tetragon.TracingPolicyMode').valuesById[mode] ?? String(mode);
  throw new StatusError(grpc.status.INVALID_ARGUMENT, `invalid mode: ${name}: expected TP_MODE_ENFORCE or TP_MODE_MONITOR`);
}

/** tetragon.TracingPolicyStatus of a policy. */
function statusMessage(status: PolicyStatus): object {
  const hookState = status.state === 'loading' ? HOOK_STATE.STATUS_UNSPECIFIED : HOOK_STATE.STATUS_LOADED;
  return {
    id: status.id,
    name: status.name,
    namespace: status.namespace,
    info: status.info,
    sensors: status.sensors,
    enabled: status.enabled,
    // filter_id stays 0 (Tetragon's "no pod filter"): Vigil keeps no policyfilter map. kernel_memory_bytes
    // stays 0 (unknown): policies share the sensor's tables, so no memory is a policy's own.
    error: status.error,
    state: STATE[`TP_STATE_${status.state.toUpperCase()}`],
    mode: MODE[`TP_MODE_${status.mode.toUpperCase()}`],
    ...(status.stats !== undefined && {
      // matched counts selector matches, Tetragon's post counts posted events: the same unless a selector has NoPost.
      stats: { action_counters: { post: status.stats.matched, signal: status.stats.actionsApplied, monitor_signal: status.stats.actionsMonitored } },
    }),
    domain: status.domain,
    hook_statuses: status.hooks.map((hook) => ({ section: hook.section, state: hookState, hook_description: hook.description, hook_idx: hook.index })),
  };
}

export function policyMethods(store: PolicyStore): Partial<Record<string, grpc.UntypedHandleCall>> {
  return {
    AddTracingPolicy: unary(async (request: { yaml?: string; domain?: string }) => {
      await store.add(request.yaml ?? '', undefined, request.domain || GRPC_DOMAIN);
      return {};
    }),
    DeleteTracingPolicy: unary(async (request: PolicyRequest) => {
      const { name, namespace, domain } = namespacedByName(store, ref(request));
      await store.delete(name, namespace, domain);
      return {};
    }),
    ListTracingPolicies: unary((request: { domain?: string }) => ({
      policies: store.list().filter((p) => !request.domain || p.domain === request.domain).map(statusMessage),
    })),
    ConfigureTracingPolicy: unary(async (request: ConfigureRequest) => {
      await store.configure(ref(request), {
        ...(request.mode !== undefined && { mode: policyMode(request.mode) }),
        ...(request.enable !== undefined && { enabled: request.enable }),
      });
      return {};
    }),
    EnableTracingPolicy: unary(async (request: PolicyRequest) => {
      await store.configure(ref(request), { enabled: true });
      return {};
    }),
    DisableTracingPolicy: unary(async (request: PolicyRequest) => {
      await store.configure(ref(request), { enabled: false });
      return {};
    }),
    ListDomains: unary(() => ({ domains: [...new Set(store.list().map((p) => p.domain))].sort() })),
    // One entry per sensor of each policy, the policy's name as its collection (Tetragon before 1.4).
    ListSensors: unary(() => ({
      sensors: store.list().flatMap((p) => p.sensors.map((name) => ({ name, enabled: p.enabled, collection: p.name }))),
    })),
    EnableSensor: deprecated('EnableSensor', 'ConfigureTracingPolicy (vigil policy enable)'),
    DisableSensor: deprecated('DisableSensor', 'ConfigureTracingPolicy (vigil policy disable)'),
    RemoveSensor: deprecated('RemoveSensor', 'DeleteTracingPolicy (vigil policy delete)'),
  };
}
