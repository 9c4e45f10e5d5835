/**
 * Forwards unary methods of tetragon.FineGuidanceSensors to another server:
 * in the split shape the sensor's public address answers the whole API, and
 * policy methods are the enforcer's. Errors come back with the enforcer's
 * status and details; an unreachable enforcer is UNAVAILABLE.
 */
import * as grpc from '@grpc/grpc-js';
import { fineGuidanceSensorsDefinition } from '../lib/tetragon-proto.js';

export interface Forwarder {
  methods: Record<string, grpc.UntypedHandleCall>;
  /** Whether the other server is reachable now (asking starts a connection when there is none). */
  reachable(): boolean;
  close(): void;
}

export function forwardMethods(address: string, names: readonly string[]): Forwarder {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const definition = fineGuidanceSensorsDefinition();
  const methods: Record<string, grpc.UntypedHandleCall> = {};
  for (const name of names) {
    const m = definition[name]!;
    const handler: grpc.handleUnaryCall<unknown, unknown> = (call, callback) => {
      client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, call.request, call.metadata,
        { deadline: Date.now() + 30_000 }, (err, res) => callback(err, res));
    };
    methods[name] = handler;
  }
  return {
    methods,
    reachable: () => client.getChannel().getConnectivityState(true) === grpc.connectivityState.READY,
    close: () => client.close(),
  };
}
