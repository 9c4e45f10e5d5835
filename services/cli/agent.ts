/**
 * `vigil agent`: the embedded default, everything on one node in one process
 * over an in-process bus: the sensor, the enforcer's policy store (driving the
 * sensor directly), the public gRPC API, and JSON lines on stdout. Logs go to
 * stderr, so stdout carries only events.
 */
import fs from 'node:fs';
import os from 'node:os';
import { LocalBus } from '../lib/bus.js';
import { VERSION } from '../lib/version.js';
import { JsonLinesExporter } from '../exporter/json-lines.js';
import { defaultCompileEnv } from '../enforcer/policy/index.js';
import { policyMethods } from '../enforcer/policy-api.js';
import { watchPolicyDir } from '../enforcer/policy-dir.js';
import { PolicyStore } from '../enforcer/policy-store.js';
import { Sensor } from '../sensor/sensor.js';
import { PublicApiServer } from '../sensor/grpc/server.js';
import { formatFlags, parseArgs, UsageError, type FlagSpecs } from './args.js';

const FLAGS: FlagSpecs = {
  'node-name': { kind: 'string', value: 'NAME', help: 'node name in events and exec_ids (default: $NODE_NAME or the hostname)' },
  'server-address': { kind: 'string', value: 'HOST:PORT', help: 'gRPC API address, empty to disable (default: localhost:54321)' },
  'server-unix-socket': { kind: 'string', value: 'PATH', help: 'gRPC API unix socket, empty to disable (default: /var/run/vigil/tetragon.sock)' },
  'export-stdout': { kind: 'bool', help: 'print events as JSON lines on stdout (default: true; --export-stdout=false to disable)' },
  'max-processes': { kind: 'string', value: 'N', help: 'bound of the process cache (default: 65536)' },
  'policy-dir': { kind: 'string', value: 'DIR', help: 'load the tracing policies of DIR/*.yaml and follow its changes' },
  help: { kind: 'bool', short: 'h', help: 'show this help' },
};

export const AGENT_USAGE = `Usage: vigil agent [flags]\n\nRun the sensor, the gRPC API and the stdout exporter in one process.\n\n${formatFlags(FLAGS)}`;

export async function runAgent(argv: string[]): Promise<void> {
  const args = parseArgs(argv, FLAGS);
  if (args.bool('help')) {
    console.log(AGENT_USAGE);
    return;
  }
  if (args.positional.length) throw new UsageError(`unexpected argument: ${args.positional[0]}`);
  const maxProcesses = args.has('max-processes') ? Number(args.string('max-processes')) : undefined;
  if (maxProcesses !== undefined && !(Number.isInteger(maxProcesses) && maxProcesses > 0)) {
    throw new UsageError(`invalid value "${args.string('max-processes')}" for --max-processes: expected a positive integer`);
  }
  const nodeName = args.string('node-name') ?? process.env.NODE_NAME ?? os.hostname();
  const policyDir = args.string('policy-dir');
  if (policyDir !== undefined && !fs.statSync(policyDir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new Error(`--policy-dir ${policyDir}: no such directory`);
  }

  const bus = new LocalBus();
  const sensor = new Sensor(bus, { nodeName, ...(maxProcesses !== undefined && { maxProcesses }) });
  const stdout = args.string('export-stdout') === 'false' ? undefined : new JsonLinesExporter(bus, process.stdout);
  sensor.start();
  const api = new PublicApiServer(bus, {
    tcpAddress: args.string('server-address') ?? 'localhost:54321',
    unixSocket: args.string('server-unix-socket') ?? '/var/run/vigil/tetragon.sock',
    version: VERSION,
    nodeName,
  });
  const log = (line: string): void => console.error(`vigil agent: ${line}`);
  const policies = new PolicyStore(sensor, defaultCompileEnv(), log);
  api.addMethods(policyMethods(policies));
  const { tcpPort } = await api.start();
  console.error(`vigil agent ${VERSION} on node ${nodeName}: gRPC API on port ${tcpPort}, ${sensor.stats().cache.size} processes from /proc`);
  const policyWatch = policyDir === undefined ? undefined : watchPolicyDir(policyDir, policies, log);

  await new Promise<void>((resolve) => {
    const shutdown = (signal: string): void => {
      console.error(`vigil agent: ${signal}, stopping`);
      resolve();
    };
    process.once('SIGINT', shutdown);
    process.once('SIGTERM', shutdown);
  });
  policyWatch?.close();
  sensor.stop();
  stdout?.close();
  await api.stop();
}
