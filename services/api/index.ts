/**
 * The public API service: Tetragon's tetragon.FineGuidanceSensors over gRPC
 * (events with filters and field filters, health, version, the policy methods
 * installed by whoever owns policies), grpc.health.v1 and reflection; and the
 * forwarder a split-shape sensor uses to pass policy methods to the enforcer.
 */
export { PublicApiServer, type PublicApiOptions, type PublicApiStats, type HealthReport } from './server.js';
export { forwardMethods, type Forwarder } from './forward.js';
