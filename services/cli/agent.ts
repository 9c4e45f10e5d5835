/**
 * `vigil agent`: the embedded default, everything on one node in one process
 * over an in-process bus: the sensor, the enforcer's policy store (driving the
 * sensor directly) and follow-up actions, the public gRPC API, and the
 * exporters (JSON lines on stdout, Prometheus on :2112, optionally a file and
 * OTLP). Logs go to stderr, so stdout carries only events.
 */
import fs from 'node:fs';
import os from 'node:os';
import { LocalBus } from '../lib/bus.js';
import { VERSION } from '../lib/version.js';
import { EXPORTER_FLAGS, exporterConfigFromArgs, startExporters, type ExporterConfig } from '../exporter/index.js';
import { defaultCompileEnv } from '../enforcer/policy/index.js';
import { policyMethods } from '../enforcer/policy-api.js';
import { watchPolicyDir } from '../enforcer/policy-dir.js';
import { PolicyStore } from '../enforcer/policy-store.js';
import { FollowUpActions } from '../enforcer/followup.js';
import { Sensor } from '../sensor/sensor.js';
import { PublicApiServer } from '../sensor/grpc/server.js';
import { DEFAULT_CONTAINERD_SOCKET, openContainerSources, type ContainerSources } from '../sensor/containers/sources.js';
import { formatFlags, parseArgs, UsageError, type FlagSpecs, type ParsedArgs } from './args.js';

/** Flags of every command that runs a sensor (agent, sensor). */
export const SENSOR_FLAGS: FlagSpecs = {
  'node-name': { kind: 'string', value: 'NAME', help: 'node name in events and exec_ids (default: $NODE_NAME or the hostname)' },
  'server-address': { kind: 'string', value: 'HOST:PORT', help: 'gRPC API address, empty to disable (default: localhost:54321)' },
  'server-unix-socket': { kind: 'string', value: 'PATH', help: 'gRPC API unix socket, empty to disable (default: /var/run/vigil/tetragon.sock)' },
  'max-processes': { kind: 'string', value: 'N', help: 'bound of the process cache (default: 65536)' },
  'containerd-socket': { kind: 'string', value: 'PATH', help: `containerd's API for pod metadata, empty for none (default: ${DEFAULT_CONTAINERD_SOCKET} when it exists)` },
  kubeconfig: { kind: 'string', value: 'FILE', help: 'Kubernetes API for pod labels (default: $KUBECONFIG, or in-cluster when running in a pod)' },
};

/** Container identity and pod metadata, as the sensor flags ask. */
export function containerSourcesOf(args: ParsedArgs, nodeName: string, log: (line: string) => void): Promise<ContainerSources> {
  return openContainerSources({
    nodeName, log,
    ...(args.has('containerd-socket') && { containerdSocket: args.string('containerd-socket')! }),
    ...(args.has('kubeconfig') && { kubeconfig: args.string('kubeconfig')! }),
  });
}

export const AGENT_FLAGS: FlagSpecs = {
  ...SENSOR_FLAGS,
  'policy-dir': { kind: 'string', value: 'DIR', help: 'load the tracing policies of DIR/*.yaml and follow its changes' },
  'no-export-stdout': { kind: 'bool', help: 'no JSON lines on stdout (the same as --export-stdout=false)' },
  ...EXPORTER_FLAGS,
  help: { kind: 'bool', short: 'h', help: 'show this help' },
};

export const AGENT_USAGE = `Usage: vigil agent [flags]\n\nRun the sensor, the policy store, the gRPC API and the exporters in one process.\n\n${formatFlags(AGENT_FLAGS)}`;

/** The agent's exporters: JSON lines on stdout unless --no-export-stdout or --export-stdout=false. Throws UsageError. */
export function agentExporterConfig(args: ParsedArgs): ExporterConfig {
  const noStdout = args.bool('no-export-stdout');
  if (noStdout && args.bool('export-stdout')) throw new UsageError('--no-export-stdout and --export-stdout contradict each other');
  return exporterConfigFromArgs(args, { stdout: !noStdout });
}

export function nodeNameOf(args: ParsedArgs): string {
  return args.string('node-name') ?? process.env.NODE_NAME ?? os.hostname();
}

export function maxProcessesOf(args: ParsedArgs): { maxProcesses?: number } {
  if (!args.has('max-processes')) return {};
  const n = Number(args.string('max-processes'));
  if (!(Number.isInteger(n) && n > 0)) throw new UsageError(`invalid value "${args.string('max-processes')}" for --max-processes: expected a positive integer`);
  return { maxProcesses: n };
}

export function policyDirOf(args: ParsedArgs): string | undefined {
  const dir = args.string('policy-dir');
  if (dir !== undefined && !fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`--policy-dir ${dir}: no such directory`);
  return dir;
}

export function publicApiOptions(args: ParsedArgs, nodeName: string): ConstructorParameters<typeof PublicApiServer>[1] {
  return {
    tcpAddress: args.string('server-address') ?? 'localhost:54321',
    unixSocket: args.string('server-unix-socket') ?? '/var/run/vigil/tetragon.sock',
    version: VERSION,
    nodeName,
  };
}

/** Resolves at SIGINT or SIGTERM. */
export function untilSignal(name: string): Promise<void> {
  return new Promise<void>((resolve) => {
    const shutdown = (signal: string): void => {
      console.error(`vigil ${name}: ${signal}, stopping`);
      resolve();
    };
    process.once('SIGINT', shutdown);
    process.once('SIGTERM', shutdown);
  });
}

export async function runAgent(argv: string[]): Promise<void> {
  const args = parseArgs(argv, AGENT_FLAGS);
  if (args.bool('help')) {
    console.log(AGENT_USAGE);
    return;
  }
  if (args.positional.length) throw new UsageError(`unexpected argument: ${args.positional[0]}`);
  const nodeName = nodeNameOf(args);
  const policyDir = policyDirOf(args);
  const exporterConfig = agentExporterConfig(args);
  const log = (line: string): void => console.error(`vigil agent: ${line}`);

  const bus = new LocalBus();
  const exporters = await startExporters(bus, exporterConfig, { version: VERSION, log });
  const containers = await containerSourcesOf(args, nodeName, log);
  const api = new PublicApiServer(bus, publicApiOptions(args, nodeName));
  const sensor = new Sensor(bus, {
    nodeName, ...maxProcessesOf(args), containers: containers.registry,
    externalStats: () => ({ subscriberDropped: api.stats().droppedTotal, publishDropped: 0 }),
  });
  sensor.start();
  const policies = new PolicyStore(sensor, defaultCompileEnv(), log);
  const followUps = new FollowUpActions(bus, nodeName, (name) => policies.program(name));
  bus.subscribeAudit((record) => log(`audit ${JSON.stringify(record)}`));
  api.addMethods(policyMethods(policies));
  const { tcpPort } = await api.start();
  const metrics = exporters.metricsPort === undefined ? '' : `, metrics on port ${exporters.metricsPort}`;
  console.error(`vigil agent ${VERSION} on node ${nodeName}: gRPC API on port ${tcpPort}${metrics}, ${sensor.stats().cache.size} processes from /proc`);
  const policyWatch = policyDir === undefined ? undefined : watchPolicyDir(policyDir, policies, log);

  await untilSignal('agent');
  policyWatch?.close();
  followUps.close();
  sensor.stop();
  await containers.close();
  await api.stop();
  await exporters.close();
}
