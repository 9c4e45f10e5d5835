/**
 * Who may change policies through the public API, decided per call.
 *
 * Policy-changing rpcs (POLICY_CHANGING_METHODS: add, delete, enable,
 * disable, configure — which sets the mode too — and the deprecated sensor
 * methods and RuntimeHook/SetDebug, which change state as well) are served
 * only to an authorised caller:
 *
 * - **Unix socket.** grpc-js does not expose a call's socket, so SO_PEERCRED
 *   cannot be read per call. The kernel checks the peer at connect instead:
 *   the socket is created owned by the server's user (root) with mode 0600,
 *   or 0660 and group G with `--server-unix-socket-group G`, so only root (or
 *   a member of G) can connect at all, and every call that arrives on it is
 *   authorised. `tetra --server-address unix:///var/run/vigil/tetragon.sock`
 *   as root keeps working.
 * - **TCP with mutual TLS** (`--server-tls-cert/--server-tls-key` and
 *   `--server-tls-client-ca`): the handshake demands a client certificate
 *   signed by the CA, so every call carries a verified certificate and is
 *   authorised. With a certificate and key but no client CA the listener is
 *   encrypted only, and a policy change over it is UNAUTHENTICATED.
 * - **Plaintext TCP**: a policy change is PERMISSION_DENIED, unless the
 *   operator opted in with `--server-insecure-policy-changes` (Tetragon's
 *   default behaviour, for a node where every local user is trusted).
 *
 * Read-only rpcs (GetEvents, GetHealth, GetVersion, GetInfo,
 * ListTracingPolicies, ListDomains, ListSensors, GetDebug) stay open on every
 * listener, as in Tetragon; put the TCP listener behind TLS (or disable it
 * with `--server-address ''`) to keep events from local users.
 *
 * Which listener a call came in on is known structurally: the server runs one
 * grpc.Server per listener (getPeer() cannot tell a unix peer from a lost
 * connection: both are "unknown").
 */
import fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';

/** The rpcs of tetragon.FineGuidanceSensors that change the node's state. */
export const POLICY_CHANGING_METHODS: ReadonlySet<string> = new Set([
  'AddTracingPolicy', 'DeleteTracingPolicy', 'ConfigureTracingPolicy', 'EnableTracingPolicy', 'DisableTracingPolicy',
  'EnableSensor', 'DisableSensor', 'RemoveSensor', 'RuntimeHook', 'SetDebug',
]);

/** The listener a call arrived on, and what its transport proved about the caller. */
export type CallOrigin =
  | { listener: 'unix' }
  | { listener: 'tcp'; tls: false }
  /** clientCertificate: the handshake verified a client certificate against the configured CA. */
  | { listener: 'tcp'; tls: true; clientCertificate: boolean };

export interface AuthorizationPolicy {
  /** Allow policy changes over TCP without a verified client certificate (plaintext or server-only TLS). */
  insecureTcpPolicyChanges: boolean;
}

export type Decision = { allowed: true } | { allowed: false; code: grpc.status; message: string };

const HOW = 'use the unix socket, mTLS (--server-tls-cert, --server-tls-key, --server-tls-client-ca), or --server-insecure-policy-changes';

/** Whether a call of `method` from `origin` may proceed. */
export function authorize(method: string, origin: CallOrigin, policy: AuthorizationPolicy): Decision {
  if (!POLICY_CHANGING_METHODS.has(method)) return { allowed: true };
  if (origin.listener === 'unix') return { allowed: true };
  if (origin.tls && origin.clientCertificate) return { allowed: true };
  if (policy.insecureTcpPolicyChanges) return { allowed: true };
  if (origin.tls) {
    return { allowed: false, code: grpc.status.UNAUTHENTICATED, message: `${method}: policy changes over TCP need a verified client certificate: ${HOW}` };
  }
  return { allowed: false, code: grpc.status.PERMISSION_DENIED, message: `${method}: policy changes over plaintext TCP are refused: ${HOW}` };
}

/** How a call's origin reads in a log or audit record. */
export function describeOrigin(origin: CallOrigin, peer: string): string {
  if (origin.listener === 'unix') return 'unix socket';
  if (!origin.tls) return `${peer} (plaintext TCP)`;
  return `${peer} (TLS, ${origin.clientCertificate ? 'client certificate' : 'no client certificate'})`;
}

/** The origin of a call on a TCP listener, from its TLS auth context. */
export function tcpOrigin(call: { getAuthContext(): { transportSecurityType?: string; sslPeerCertificate?: unknown } }, tls: boolean): CallOrigin {
  if (!tls) return { listener: 'tcp', tls: false };
  const auth = call.getAuthContext();
  return { listener: 'tcp', tls: true, clientCertificate: auth.transportSecurityType === 'ssl' && auth.sslPeerCertificate !== undefined };
}

/** A group's id from its name (as /etc/group has it) or a number. Throws when there is no such group. */
export function groupId(group: string, groupFile = '/etc/group'): number {
  if (/^\d+$/.test(group)) return Number(group);
  const text = fs.readFileSync(groupFile, 'utf8');
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new Error(`no group "${group}" in ${groupFile}`);
}
