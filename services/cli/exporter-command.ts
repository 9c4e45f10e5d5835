/**
 * `vigil exporter`: the split shape's output service. It consumes events from
 * NATS JetStream through durable consumers (one per output, acknowledged after
 * export, so a restart resumes where it stopped) and sensors' stats, and runs
 * the same exporters as `vigil agent`.
 */
import os from 'node:os';
import { VERSION } from '../lib/version.js';
import { EXPORTER_FLAGS, exporterConfigFromArgs, startExporters } from '../exporter/index.js';
import { untilSignal } from './common-flags.js';
import { formatFlags, parseArgs, UsageError, type FlagSpecs } from '../lib/flags.js';
import { NATS_FLAGS, connectBus } from './split-flags.js';

const FLAGS: FlagSpecs = {
  ...NATS_FLAGS,
  'durable-name': { kind: 'string', value: 'NAME', help: 'name prefix of the durable consumers: exporters sharing it share the work (default: vigil-exporter)' },
  ...EXPORTER_FLAGS,
  help: { kind: 'bool', short: 'h', help: 'show this help' },
};

export async function runExporter(argv: string[]): Promise<void> {
  const args = parseArgs(argv, FLAGS);
  if (args.bool('help')) {
    console.log(`Usage: vigil exporter [flags]\n\nExport events from NATS JetStream: stdout, file, Prometheus, OpenTelemetry.\n\n${formatFlags(FLAGS)}`);
    return;
  }
  if (args.positional.length) throw new UsageError(`unexpected argument: ${args.positional[0]}`);
  const log = (line: string): void => console.error(`vigil exporter: ${line}`);
  const config = { ...exporterConfigFromArgs(args, { stdout: false }), durable: args.string('durable-name') ?? 'vigil-exporter' };
  const bus = await connectBus(args, `exporter-${os.hostname()}`, log);
  // A start that fails (a bad OTEL_* setting, an unwritable export file) ends the process: close NATS first.
  const exporters = await startExporters(bus, config, { version: VERSION, log }).catch(async (err: unknown) => {
    await bus.close();
    throw err;
  });
  const metrics = exporters.metricsPort === undefined ? '' : `, metrics on port ${exporters.metricsPort}`;
  console.error(`vigil exporter ${VERSION}: consuming as ${config.durable}${metrics}`);
  await untilSignal('exporter');
  await exporters.close();
  await bus.close();
}
