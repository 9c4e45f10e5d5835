/**
 * What the commands that run a service on a node share: the sensor's flags
 * (agent, sensor), how they become options, and waiting for a stop signal.
 */
import fs from 'node:fs';
import os from 'node:os';
import { DEFAULT_CONTAINERD_SOCKET, DEFAULT_SERVER_ADDRESS, DEFAULT_SERVER_UNIX_SOCKET } from '../lib/defaults.js';
import { UsageError, type FlagSpecs, type ParsedArgs } from '../lib/flags.js';
import { VERSION } from '../lib/version.js';
import type { PublicApiOptions } from '../api/index.js';
import { openContainerSources, type ContainerSources } from '../sensor/index.js';

/**
 * Who may reach the public API and change policies (services/api/authorization.ts):
 * of every command that serves it (agent, sensor, enforcer).
 */
export const API_SECURITY_FLAGS: FlagSpecs = {
  'server-unix-socket-group': { kind: 'string', value: 'GROUP', help: 'group that may use the unix socket (mode 0660); default: only root (mode 0600)' },
  'server-tls-cert': { kind: 'string', value: 'FILE', help: 'TLS certificate (PEM) of the TCP listener; with --server-tls-key' },
  'server-tls-key': { kind: 'string', value: 'FILE', help: 'TLS private key (PEM) of the TCP listener' },
  'server-tls-client-ca': { kind: 'string', value: 'FILE', help: 'CA (PEM) that TCP clients must present a certificate of (mutual TLS); such clients may change policies' },
  'server-insecure-policy-changes': { kind: 'bool', help: 'allow policy changes over TCP without a client certificate (Tetragon\'s default; any local user can then change policies)' },
};

/** Flags of every command that runs a sensor (agent, sensor). */
export const SENSOR_FLAGS: FlagSpecs = {
  'node-name': { kind: 'string', value: 'NAME', help: 'node name in events and exec_ids (default: $NODE_NAME or the hostname)' },
  'server-address': { kind: 'string', value: 'HOST:PORT', help: `gRPC API address, empty to disable (default: ${DEFAULT_SERVER_ADDRESS})` },
  'server-unix-socket': { kind: 'string', value: 'PATH', help: `gRPC API unix socket, empty to disable (default: ${DEFAULT_SERVER_UNIX_SOCKET})` },
  ...API_SECURITY_FLAGS,
  'max-processes': { kind: 'string', value: 'N', help: 'bound of the process cache (default: 65536)' },
  'containerd-socket': { kind: 'string', value: 'PATH', help: `containerd's API for pod metadata, empty for none (default: ${DEFAULT_CONTAINERD_SOCKET} when it exists)` },
  kubeconfig: { kind: 'string', value: 'FILE', help: 'Kubernetes API for pod labels, and for TracingPolicy objects in the agent and enforcer (default: $KUBECONFIG, or in-cluster when running in a pod)' },
};

/** Container identity and pod metadata, as the sensor flags ask. */
export function containerSourcesOf(args: ParsedArgs, nodeName: string, log: (line: string) => void): Promise<ContainerSources> {
  return openContainerSources({
    nodeName, log,
    ...(args.has('containerd-socket') && { containerdSocket: args.string('containerd-socket')! }),
    ...(args.has('kubeconfig') && { kubeconfig: args.string('kubeconfig')! }),
  });
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

/** The API_SECURITY_FLAGS as server options. Throws UsageError for an incomplete TLS setup. */
export function apiSecurityOptions(args: ParsedArgs): Pick<PublicApiOptions, 'tls' | 'unixSocketGroup' | 'insecureTcpPolicyChanges'> {
  const has = (flag: string): boolean => (args.string(flag) ?? '') !== '';
  if (has('server-tls-cert') !== has('server-tls-key')) throw new UsageError('--server-tls-cert and --server-tls-key go together');
  if (has('server-tls-client-ca') && !has('server-tls-cert')) throw new UsageError('--server-tls-client-ca needs --server-tls-cert and --server-tls-key');
  return {
    insecureTcpPolicyChanges: args.bool('server-insecure-policy-changes'),
    ...(has('server-unix-socket-group') && { unixSocketGroup: args.string('server-unix-socket-group')! }),
    ...(has('server-tls-cert') && {
      tls: {
        cert: args.pemFile('server-tls-cert')!,
        key: args.pemFile('server-tls-key')!,
        ...(has('server-tls-client-ca') && { clientCa: args.pemFile('server-tls-client-ca')! }),
      },
    }),
  };
}

export function publicApiOptions(args: ParsedArgs, nodeName: string): PublicApiOptions {
  return {
    tcpAddress: args.string('server-address') ?? DEFAULT_SERVER_ADDRESS,
    unixSocket: args.string('server-unix-socket') ?? DEFAULT_SERVER_UNIX_SOCKET,
    version: VERSION,
    nodeName,
    ...apiSecurityOptions(args),
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
