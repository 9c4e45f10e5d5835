/**
 * `vigil policy`: manage the server's tracing policies, as `tetra
 * tracingpolicy` does (same rpcs, same messages, same list table).
 */
import { readFileHead } from '../lib/bounded-file.js';
import { toProtoJson, tetragonRoot } from '../lib/tetragon-proto.js';
import { formatFlags, parseArgs, UsageError, type FlagSpecs } from '../lib/flags.js';
import { CLIENT_TLS_FLAGS, clientTlsOf, describeError, isServiceError, policyServerAddress, SensorsClient } from './client.js';
import { DEFAULT_SERVER_ADDRESS, DEFAULT_SERVER_UNIX_SOCKET } from '../lib/defaults.js';

const FLAGS: FlagSpecs = {
  server: { kind: 'string', aliases: ['server-address'], value: 'ADDR',
    help: `Server address, host:port or unix:///path (default $VIGIL_SERVER_ADDRESS, else unix://${DEFAULT_SERVER_UNIX_SOCKET} when it exists, else ${DEFAULT_SERVER_ADDRESS})` },
  ...CLIENT_TLS_FLAGS,
  namespace: { kind: 'string', short: 'n', value: 'NS', help: 'Namespace of the policy (delete, enable, disable, mode)' },
  domain: { kind: 'string', value: 'DOMAIN', help: 'Domain of the policy: grpc (default; list: every domain) or static (--policy-dir)' },
  output: { kind: 'string', short: 'o', value: 'text|json', help: 'Output format of list (default text)' },
  help: { kind: 'bool', short: 'h', help: 'Show this help' },
};

const HELP = `Manage the tracing policies of the Vigil server.

Usage:
  vigil policy add FILE
  vigil policy delete NAME [--namespace NS]
  vigil policy list [-o text|json]
  vigil policy enable NAME [--namespace NS]
  vigil policy disable NAME [--namespace NS]
  vigil policy mode NAME enforce|monitor [--namespace NS]

Flags:
${formatFlags(FLAGS)}`;

interface Subcommand {
  /** The positional arguments, by name. */
  args: string[];
  flags: string[];
  run(client: SensorsClient, args: string[], flags: { namespace: string; domain: string; output: string }): Promise<string>;
}

const MODES = tetragonRoot.lookupEnum('tetragon.TracingPolicyMode');
const STATES = tetragonRoot.lookupEnum('tetragon.TracingPolicyState');

/** A failed call as the command's error: `failed to WHAT: CODE: details`. */
async function call<Res>(client: SensorsClient, what: string, method: string, request: object): Promise<Res> {
  try {
    return await client.unary<Res>(method, request);
  } catch (err) {
    throw new Error(`failed to ${what}: ${isServiceError(err) ? describeError(err) : (err as Error).message}`);
  }
}

interface ActionCounters { post?: number; signal?: number; monitor_signal?: number; override?: number; monitor_override?: number;
  notify_enforcer?: number; monitor_notify_enforcer?: number; set?: number; monitor_set?: number }

interface PolicyStatusMessage {
  id?: number; name?: string; domain?: string; state?: number; filter_id?: number; namespace?: string; sensors?: string[];
  kernel_memory_bytes?: number; mode?: number; stats?: { action_counters?: ActionCounters };
}

/** tetra's HumanizeByteCount: 4458824 → "4.46 MB". */
function humanBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  let div = 1000;
  let exp = 0;
  for (let n = bytes / 1000; n >= 1000; n /= 1000) {
    div *= 1000;
    exp++;
  }
  return `${(bytes / div).toFixed(2)} ${'kMGTPE'[exp]}B`;
}

/** An enum value's name, lower case, less its prefix: TP_STATE_ENABLED → enabled. */
function enumName(values: Record<number, string>, value: number | undefined, prefix: string): string {
  return (values[value ?? 0] ?? String(value)).toLowerCase().replace(prefix, '');
}

/** `tetra tracingpolicy list`'s table: columns padded to the widest cell plus three spaces, the last one not. */
function formatPolicyTable(policies: PolicyStatusMessage[]): string {
  const rows = [['ID', 'NAME', 'DOMAIN', 'STATE', 'FILTERID', 'NAMESPACE', 'SENSORS', 'KERNELMEMORY', 'MODE', 'NPOST', 'NENFORCE', 'NMONITOR']];
  for (const p of policies) {
    const c = p.stats?.action_counters ?? {};
    const sum = (...values: (number | undefined)[]): string => String(values.reduce<number>((a, v) => a + (v ?? 0), 0));
    rows.push([
      String(p.id ?? 0), p.name ?? '', p.domain ?? '', enumName(STATES.valuesById, p.state, 'tp_state_'), String(p.filter_id ?? 0),
      p.namespace || '(global)', (p.sensors ?? []).join(','), humanBytes(p.kernel_memory_bytes ?? 0), enumName(MODES.valuesById, p.mode, 'tp_mode_'),
      sum(c.post), sum(c.signal, c.override, c.notify_enforcer, c.set), sum(c.monitor_signal, c.monitor_override, c.monitor_notify_enforcer, c.monitor_set),
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]! + 3))).join('')).join('\n') + '\n';
}

/** A ConfigureTracingPolicy subcommand, as tetra's enable, disable and set-mode. */
function configure(args: string[], what: string, change: (args: string[]) => { request: object; done: string }): Subcommand {
  return {
    args,
    flags: ['namespace', 'domain'],
    run: async (client, [name, ...rest], flags) => {
      const { request, done } = change(rest);
      await call(client, `${what} tracing policy "${name}"`, 'ConfigureTracingPolicy', { name, namespace: flags.namespace, domain: flags.domain, ...request });
      return `tracing policy "${name}" ${done}\n`;
    },
  };
}

/**
 * The text of `vigil policy add FILE`, which may be a pipe (/dev/stdin): at
 * most the server's limit is read, and a longer text is refused here, as the
 * server would refuse it.
 */
async function policyFileText(file: string): Promise<string> {
  // The server's limit, from its compiler: loaded by `add` alone, the other subcommands need none of it.
  const { POLICY_LIMITS } = await import('../enforcer/index.js');
  let head;
  try {
    head = readFileHead(file, POLICY_LIMITS.maxBytes, { anyKind: true });
  } catch (err) {
    throw new Error(`failed to read ${file}: ${(err as Error).message}`);
  }
  if (head.more) throw new Error(`failed to read ${file}: a policy text is at most ${POLICY_LIMITS.maxBytes} bytes (1 MiB)`);
  return head.data.toString('utf8');
}

const SUBCOMMANDS: Record<string, Subcommand> = {
  add: {
    args: ['FILE'],
    flags: ['domain'],
    run: async (client, [file], flags) => {
      const yaml = await policyFileText(file!);
      await call(client, `add tracing policy "${file}"`, 'AddTracingPolicy', { yaml, domain: flags.domain });
      return `tracing policy "${file}" added\n`;
    },
  },
  delete: {
    args: ['NAME'],
    flags: ['namespace', 'domain'],
    run: async (client, [name], flags) => {
      await call(client, `delete tracing policy "${name}"`, 'DeleteTracingPolicy', { name, namespace: flags.namespace, domain: flags.domain });
      return `tracing policy "${name}" deleted\n`;
    },
  },
  list: {
    args: [],
    flags: ['output', 'domain'],
    run: async (client, _args, flags) => {
      const res = await call<{ policies?: PolicyStatusMessage[] }>(client, 'list tracing policies', 'ListTracingPolicies', { domain: flags.domain });
      return flags.output === 'json' ? `${JSON.stringify(toProtoJson('ListTracingPoliciesResponse', res))}\n` : formatPolicyTable(res.policies ?? []);
    },
  },
  enable: configure(['NAME'], 'enable', () => ({ request: { enable: true }, done: 'enabled' })),
  disable: configure(['NAME'], 'disable', () => ({ request: { enable: false }, done: 'disabled' })),
  mode: configure(['NAME', 'MODE'], 'set the mode of', ([mode]) => ({ request: { mode: MODES.values[`TP_MODE_${mode!.toUpperCase()}`] }, done: `set to mode "${mode}"` })),
};

export async function runPolicy(argv: string[]): Promise<number> {
  const args = parseArgs(argv, FLAGS);
  const [name, ...rest] = args.positional;
  if (args.bool('help')) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  if (name === undefined) throw new UsageError(`missing subcommand (${Object.keys(SUBCOMMANDS).join(', ')})`);
  const sub = Object.hasOwn(SUBCOMMANDS, name) ? SUBCOMMANDS[name]! : undefined;
  if (sub === undefined) throw new UsageError(`unknown subcommand "${name}" (${Object.keys(SUBCOMMANDS).join(', ')})`);
  if (rest.length !== sub.args.length) {
    throw new UsageError(`${name} takes ${sub.args.length === 0 ? 'no arguments' : sub.args.join(' ')}, got ${rest.length === 0 ? 'none' : rest.join(' ')}`);
  }
  for (const flag of ['namespace', 'domain', 'output']) {
    if (args.has(flag) && !sub.flags.includes(flag)) throw new UsageError(`--${flag} does not apply to policy ${name}`);
  }
  const output = args.string('output') ?? 'text';
  if (output !== 'text' && output !== 'json') throw new UsageError(`invalid --output "${output}": expected text or json`);
  if (name === 'mode' && rest[1] !== 'enforce' && rest[1] !== 'monitor') throw new UsageError(`invalid mode "${rest[1]}": expected enforce or monitor`);

  const client = new SensorsClient(policyServerAddress(args.string('server')), clientTlsOf(args));
  try {
    process.stdout.write(await sub.run(client, rest, { namespace: args.string('namespace') ?? '', domain: args.string('domain') ?? '', output }));
  } finally {
    client.close();
  }
  return 0;
}
