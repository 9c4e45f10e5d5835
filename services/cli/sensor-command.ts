/**
 * `vigil sensor`: the split shape's node service. It owns the BPF objects,
 * publishes every event once to NATS JetStream (and to its own gRPC
 * subscribers), serves the control API to the enforcer on a unix socket, and
 * answers the whole public API on its address, forwarding policy methods to
 * the enforcer. Who may call those is decided here, before forwarding
 * (services/api/authorization.ts; the API_SECURITY_FLAGS): the enforcer only
 * sees the sensor, over its root-only unix socket.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { LocalBus, TeeBus } from '../lib/bus.js';
import { POLICY_METHODS, addSensorControlService } from '../lib/control-api.js';
import { VERSION } from '../lib/version.js';
import { SENSOR_FLAGS, containerSourcesOf, maxProcessesOf, nodeNameOf, publicApiOptions, untilSignal } from './common-flags.js';
import { formatFlags, parseArgs, UsageError, type FlagSpecs } from '../lib/flags.js';
import { CONTROL_FLAGS, NATS_FLAGS, connectBus, controlSocketOf } from './split-flags.js';
import { DEFAULT_ENFORCER_SOCKET } from '../lib/defaults.js';
import { PublicApiServer, forwardMethods } from '../api/index.js';
import { Sensor } from '../sensor/index.js';

const FLAGS: FlagSpecs = {
  ...SENSOR_FLAGS,
  ...NATS_FLAGS,
  ...CONTROL_FLAGS,
  'enforcer-address': { kind: 'string', value: 'ADDR', help: `where policy methods are forwarded (default: unix://${DEFAULT_ENFORCER_SOCKET})` },
  help: { kind: 'bool', short: 'h', help: 'show this help' },
};

/** Serves the control API on a unix socket (replacing a stale socket file). */
export async function serveControl(socket: string, control: Parameters<typeof addSensorControlService>[1]): Promise<grpc.Server> {
  fs.mkdirSync(path.dirname(socket), { recursive: true });
  if (fs.statSync(socket, { throwIfNoEntry: false })?.isSocket()) fs.rmSync(socket);
  const server = new grpc.Server();
  addSensorControlService(server, control);
  await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  return server;
}

export async function runSensor(argv: string[]): Promise<void> {
  const args = parseArgs(argv, FLAGS);
  if (args.bool('help')) {
    console.log(`Usage: vigil sensor [flags]\n\nRun the sensor of the split shape: BPF, events to NATS, the control API, the public gRPC API.\n\n${formatFlags(FLAGS)}`);
    return;
  }
  if (args.positional.length) throw new UsageError(`unexpected argument: ${args.positional[0]}`);
  const nodeName = nodeNameOf(args);
  const log = (line: string): void => console.error(`vigil sensor: ${line}`);
  const nats = await connectBus(args, nodeName, log);
  const bus = new TeeBus(new LocalBus(), nats);
  const containers = await containerSourcesOf(args, nodeName, log);
  const enforcerAddress = args.string('enforcer-address') ?? `unix://${DEFAULT_ENFORCER_SOCKET}`;
  // Health tells what a client would otherwise learn from failing policy calls: the enforcer is away.
  const api = new PublicApiServer(bus, {
    ...publicApiOptions(args, nodeName),
    health: () => (forwarder.reachable() ? { status: 'running' } : { status: 'error', details: `the enforcer at ${enforcerAddress} is not reachable: policy methods fail` }),
  });
  const sensor = new Sensor(bus, {
    nodeName, ...maxProcessesOf(args), containers: containers.registry,
    externalStats: () => ({ subscriberDropped: api.stats().droppedTotal, publishDropped: nats.stats().publishDropped }),
  });
  sensor.start();
  const control = await serveControl(controlSocketOf(args), sensor);
  const forwarder = forwardMethods(enforcerAddress, POLICY_METHODS);
  api.addMethods(forwarder.methods);
  const { tcpPort } = await api.start();
  console.error(`vigil sensor ${VERSION} on node ${nodeName}: gRPC API on port ${tcpPort}, control on ${controlSocketOf(args)}, ${sensor.stats().cache.size} processes from /proc`);

  await untilSignal('sensor');
  sensor.stop();
  await containers.close();
  control.forceShutdown();
  forwarder.close();
  await api.stop();
  await nats.close();
}
