/** The gRPC side of the `vigil` commands: server address, calls, error text. */
import * as grpc from '@grpc/grpc-js';
import { fineGuidanceSensorsDefinition } from '../lib/tetragon-proto.js';
import { DEFAULT_SERVER_ADDRESS } from '../lib/defaults.js';


/** Unary calls give up after this long, as tetra's default --timeout does. */
const UNARY_TIMEOUT_MS = 30_000;

/** The address from the flag, else $VIGIL_SERVER_ADDRESS, else the default. */
export function serverAddress(flag: string | undefined): string {
  return flag || process.env.VIGIL_SERVER_ADDRESS || DEFAULT_SERVER_ADDRESS;
}

/** `CODE: details` of a failed call. */
export function describeError(err: grpc.ServiceError): string {
  return `${grpc.status[err.code] ?? err.code}: ${err.details || err.message}`;
}

/** A client of tetragon.FineGuidanceSensors; messages are in the event-model shape. */
export class SensorsClient {
  private readonly client: grpc.Client;
  private readonly methods = fineGuidanceSensorsDefinition();

  constructor(readonly address: string) {
    // grpc-js understands host:port, dns:, ipv4:, ipv6: and unix: targets itself.
    this.client = new grpc.Client(address, grpc.credentials.createInsecure());
  }

  unary<Res>(method: string, request: object): Promise<Res> {
    const m = this.method(method);
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, request, new grpc.Metadata(),
        { deadline: Date.now() + UNARY_TIMEOUT_MS }, (err, res) => (err ? reject(err) : resolve(res as Res)));
    });
  }

  serverStream(method: string, request: object): grpc.ClientReadableStream<unknown> {
    const m = this.method(method);
    return this.client.makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, request, new grpc.Metadata(), {});
  }

  close(): void {
    this.client.close();
  }

  private method(name: string): grpc.MethodDefinition<object, unknown> {
    const m = this.methods[name];
    if (m === undefined) throw new Error(`tetragon.FineGuidanceSensors has no method ${name}`);
    return m as grpc.MethodDefinition<object, unknown>;
  }
}

/** Whether an error is the ServiceError of a finished call (rather than a local failure). */
export function isServiceError(err: unknown): err is grpc.ServiceError {
  return err instanceof Error && typeof (err as Partial<grpc.ServiceError>).code === 'number' && 'details' in err;
}
