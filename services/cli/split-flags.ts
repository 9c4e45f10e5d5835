/** Flags the split-shape commands (sensor, enforcer, exporter) share, and how they connect to NATS. */
import { NatsBus } from '../lib/nats/index.js';
import type { FlagSpecs, ParsedArgs } from './args.js';

export const NATS_FLAGS: FlagSpecs = {
  'nats-url': { kind: 'string', value: 'URLS', help: 'NATS servers with JetStream, comma-separated (default: nats://127.0.0.1:4222)' },
};

export const CONTROL_FLAGS: FlagSpecs = {
  'control-socket': { kind: 'string', value: 'PATH', help: 'the sensor control API unix socket (default: /var/run/vigil/sensor-control.sock)' },
};

export const DEFAULT_ENFORCER_SOCKET = '/var/run/vigil/enforcer.sock';

export function controlSocketOf(args: ParsedArgs): string {
  return args.string('control-socket') ?? '/var/run/vigil/sensor-control.sock';
}

export function connectBus(args: ParsedArgs, node: string, log: (line: string) => void): Promise<NatsBus> {
  return NatsBus.connect({ servers: args.string('nats-url') ?? 'nats://127.0.0.1:4222', node, log });
}
