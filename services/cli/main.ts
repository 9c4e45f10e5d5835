/**
 * The `vigil` command (bin/vigil.js). Exit codes: 0 success, 1 failure,
 * 2 usage error (unknown command or flag, bad flag value).
 *
 * Commands load their modules on demand, so `vigil help` or `vigil version`
 * does not pay for the agent or the proto definitions.
 */
import { formatFlags, parseArgs, UsageError, type FlagSpecs } from '../lib/flags.js';
import { VERSION } from '../lib/version.js';
import { DEFAULT_SERVER_ADDRESS } from '../lib/defaults.js';

interface Command {
  summary: string;
  /** Resolves to the exit code; throws UsageError for bad usage. */
  run(argv: string[]): Promise<number>;
}

const helpFlag: FlagSpecs = { help: { kind: 'bool', short: 'h', help: 'Show this help' } };

const VERSION_FLAGS: FlagSpecs = {
  server: { kind: 'optional', short: 's', aliases: ['server-address'], value: 'ADDR',
    help: 'Also print the server\'s version (address as for `vigil events`)' },
  ...helpFlag,
};

const STATUS_FLAGS: FlagSpecs = {
  server: { kind: 'string', aliases: ['server-address'], value: 'ADDR',
    help: `Server address, host:port or unix:///path (default $VIGIL_SERVER_ADDRESS, else ${DEFAULT_SERVER_ADDRESS})` },
  ...helpFlag,
};

/** A unary call's failure as the command's error message (exit 1). */
async function call<Res>(address: string, method: string): Promise<Res> {
  const { SensorsClient, describeError, isServiceError } = await import('./client.js');
  const client = new SensorsClient(address);
  try {
    return await client.unary<Res>(method, {});
  } catch (err) {
    throw new Error(`${method} from ${address} failed: ${isServiceError(err) ? describeError(err) : (err as Error).message}`);
  } finally {
    client.close();
  }
}

async function runVersion(argv: string[]): Promise<number> {
  const args = parseArgs(argv, VERSION_FLAGS);
  if (args.bool('help')) {
    process.stdout.write(`Print the version of this client and, with --server, of the server.\n\nUsage: vigil version [--server[=ADDR]]\n\nFlags:\n${formatFlags(VERSION_FLAGS)}\n`);
    return 0;
  }
  if (args.positional.length > 0) throw new UsageError(`unexpected argument "${args.positional[0]}"`);
  process.stdout.write(`CLI version: ${VERSION}\n`);
  if (args.has('server')) {
    const { serverAddress } = await import('./client.js');
    const res = await call<{ version?: string }>(serverAddress(args.string('server')), 'GetVersion');
    process.stdout.write(`Server version: ${res.version ?? ''}\n`);
  }
  return 0;
}

async function runStatus(argv: string[]): Promise<number> {
  const args = parseArgs(argv, STATUS_FLAGS);
  if (args.bool('help')) {
    process.stdout.write(`Print the server's health status.\n\nUsage: vigil status [flags]\n\nFlags:\n${formatFlags(STATUS_FLAGS)}\n`);
    return 0;
  }
  if (args.positional.length > 0) throw new UsageError(`unexpected argument "${args.positional[0]}"`);
  const { serverAddress } = await import('./client.js');
  const res = await call<{ health_status?: { details?: string }[] }>(serverAddress(args.string('server')), 'GetHealth');
  const first = res.health_status?.[0];
  // tetra prints the first status only.
  process.stdout.write(first === undefined ? 'Health Status: no status available\n' : `Health Status: ${first.details ?? ''}\n`);
  return 0;
}

const COMMANDS: Record<string, Command> = {
  agent: {
    summary: 'Run the agent',
    run: async (argv) => {
      const { runAgent } = await import('./agent-command.js');
      await runAgent(argv);
      return 0;
    },
  },
  events: {
    summary: 'Print events from the server, or from JSON lines on stdin',
    run: async (argv) => (await import('./events-command.js')).runEvents(argv),
  },
  policy: {
    summary: 'Manage the server\'s tracing policies: add, delete, list, enable, disable, mode',
    run: async (argv) => (await import('./policy-command.js')).runPolicy(argv),
  },
  status: { summary: 'Print the server\'s health status', run: runStatus },
  version: { summary: 'Print the client version (and the server\'s with --server)', run: runVersion },
  sensor: {
    summary: 'Run the sensor of the split shape (BPF, events to NATS, control API)',
    run: async (argv) => { await (await import('./sensor-command.js')).runSensor(argv); return 0; },
  },
  enforcer: {
    summary: 'Run the enforcer of the split shape (policies, follow-up actions)',
    run: async (argv) => { await (await import('./enforcer-command.js')).runEnforcer(argv); return 0; },
  },
  exporter: {
    summary: 'Run the exporters of the split shape (from NATS JetStream)',
    run: async (argv) => { await (await import('./exporter-command.js')).runExporter(argv); return 0; },
  },
};

function usage(): string {
  const listed = Object.entries(COMMANDS).filter(([, c]) => c.summary !== '');
  const width = Math.max(...listed.map(([name]) => name.length), 'help'.length) + 3;
  const lines = [...listed, ['help', { summary: 'Show help for a command' }] as const]
    .map(([name, c]) => `  ${name.padEnd(width)}${c.summary}`);
  return `Vigil: eBPF runtime security for Linux hosts, containers and Kubernetes.

Usage: vigil <command> [flags]

Commands:
${lines.join('\n')}

Run 'vigil <command> --help' for the flags of a command.
`;
}

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h' || (first === 'help' && rest.length === 0)) {
    process.stdout.write(usage());
    return 0;
  }
  // `vigil help CMD` is `vigil CMD --help`.
  const [name, args] = first === 'help' ? [rest[0]!, ['--help']] : [first, rest];
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (command === undefined) {
    const what = name.startsWith('-') ? `unknown flag: ${name}` : `unknown command "${name}"`;
    process.stderr.write(`vigil: ${what}\nRun 'vigil --help' for usage.\n`);
    return 2;
  }
  try {
    return await command.run(args);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`vigil ${name}: ${err.message}\nRun 'vigil ${name} --help' for usage.\n`);
      return 2;
    }
    process.stderr.write(`vigil ${name}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

// A reader that goes away (`vigil events | head`) ends the command quietly.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  process.exit(0);
});

process.exitCode = await main(process.argv.slice(2));
