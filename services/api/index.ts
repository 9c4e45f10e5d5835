/**
 * The public API service: Tetragon's tetragon.FineGuidanceSensors over gRPC
 * (events with filters and field filters, health, version, the policy methods
 * installed by whoever owns policies, changeable only by authorised callers:
 * authorization.ts), grpc.health.v1 and reflection; and the
 * forwarder a split-shape sensor uses to pass policy methods to the enforcer.
 */
export { PublicApiServer, type PublicApiOptions, type PublicApiStats, type HealthReport, type ServerTlsOptions } from './server.js';
export { POLICY_CHANGING_METHODS, authorize, type CallOrigin, type Decision } from './authorization.js';
export { forwardMethods, type Forwarder } from './forward.js';
