/** The gRPC side of the `vigil` commands: server address, TLS, calls, error text. */
import fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { fineGuidanceSensorsDefinition } from '../lib/tetragon-proto.js';
import { DEFAULT_SERVER_ADDRESS, DEFAULT_SERVER_UNIX_SOCKET } from '../lib/defaults.js';
import { UsageError, type FlagSpecs, type ParsedArgs } from '../lib/flags.js';


/** Unary calls give up after this long, as tetra's default --timeout does. */
const UNARY_TIMEOUT_MS = 30_000;

/** The address from the flag, else $VIGIL_SERVER_ADDRESS, else the default. */
export function serverAddress(flag: string | undefined): string {
  return flag || process.env.VIGIL_SERVER_ADDRESS || DEFAULT_SERVER_ADDRESS;
}

/**
 * The address of a policy-changing command: the flag, else $VIGIL_SERVER_ADDRESS,
 * else the local unix socket when it exists (policy changes over plaintext TCP
 * are refused by default), else the TCP default.
 */
export function policyServerAddress(flag: string | undefined, socket = DEFAULT_SERVER_UNIX_SOCKET): string {
  if (flag || process.env.VIGIL_SERVER_ADDRESS) return serverAddress(flag);
  return fs.statSync(socket, { throwIfNoEntry: false })?.isSocket() ? `unix://${socket}` : DEFAULT_SERVER_ADDRESS;
}

/** PEM contents for a TLS connection; cert and key together make it mutual TLS. */
export interface ClientTlsOptions {
  /** CA of the server's certificate; default: the system's roots. */
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** The TLS flags of the commands that talk to the server (events, policy). */
export const CLIENT_TLS_FLAGS: FlagSpecs = {
  'tls-ca': { kind: 'string', value: 'FILE', help: 'Connect with TLS, trusting the server certificate\'s CA in FILE (PEM)' },
  'tls-cert': { kind: 'string', value: 'FILE', help: 'Client certificate (PEM) for mutual TLS; with --tls-key' },
  'tls-key': { kind: 'string', value: 'FILE', help: 'Private key (PEM) of --tls-cert' },
};

/** TLS options from CLIENT_TLS_FLAGS, or undefined when none was given (plaintext). Throws UsageError. */
export function clientTlsOf(args: ParsedArgs): ClientTlsOptions | undefined {
  const [ca, cert, key] = [args.pemFile('tls-ca'), args.pemFile('tls-cert'), args.pemFile('tls-key')];
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  if (ca === undefined && cert === undefined) return undefined;
  return { ...(ca !== undefined && { ca }), ...(cert !== undefined && { cert, key: key! }) };
}

/** `CODE: details` of a failed call. */
export function describeError(err: grpc.ServiceError): string {
  return `${grpc.status[err.code] ?? err.code}: ${err.details || err.message}`;
}

/** A client of tetragon.FineGuidanceSensors; messages are in the event-model shape. */
export class SensorsClient {
  private readonly client: grpc.Client;
  private readonly methods = fineGuidanceSensorsDefinition();

  constructor(readonly address: string, tls?: ClientTlsOptions) {
    // grpc-js understands host:port, dns:, ipv4:, ipv6: and unix: targets itself.
    const credentials = tls === undefined ? grpc.credentials.createInsecure() : grpc.credentials.createSsl(tls.ca ?? null, tls.key ?? null, tls.cert ?? null);
    // An HTTP/2 window of 16 MiB, as Go's BDP estimation grows tetra's: with grpc-js's 64 KiB an
    // event stream gets one window per round trip, far below what the agent sends in a burst.
    this.client = new grpc.Client(address, credentials, { 'grpc-node.flow_control_window': 16 * 1024 * 1024 });
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
