/** Flags the split-shape commands (sensor, enforcer, exporter) share, and how they connect to NATS. */
import { NatsBus } from '../lib/nats/index.js';
import type { FlagSpecs, ParsedArgs } from '../lib/flags.js';
import { DEFAULT_CONTROL_SOCKET, DEFAULT_NATS_URL } from '../lib/defaults.js';

export const NATS_FLAGS: FlagSpecs = {
  'nats-url': { kind: 'string', value: 'URLS', help: `NATS servers with JetStream, comma-separated (default: ${DEFAULT_NATS_URL})` },
};

export const CONTROL_FLAGS: FlagSpecs = {
  'control-socket': { kind: 'string', value: 'PATH', help: `the sensor control API unix socket (default: ${DEFAULT_CONTROL_SOCKET})` },
};

export function controlSocketOf(args: ParsedArgs): string {
  return args.string('control-socket') ?? DEFAULT_CONTROL_SOCKET;
}

export function connectBus(args: ParsedArgs, node: string, log: (line: string) => void): Promise<NatsBus> {
  return NatsBus.connect({ servers: args.string('nats-url') ?? DEFAULT_NATS_URL, node, log });
}
