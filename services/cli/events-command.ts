/**
 * `vigil events`: print events, from the server's GetEvents stream or from
 * Tetragon JSON lines on stdin, as JSON or compact lines. Flags and the
 * stdin rule follow `tetra getevents`; tetra 0.x/1.0's plural spellings
 * (--processes, --namespaces, --pods) are accepted as hidden aliases.
 */
import fs from 'node:fs';
import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { fromProtoJson, tetragonRoot, toProtoJson } from '../lib/tetragon-proto.js';
import { formatFlags, parseArgs, UsageError, type FlagSpecs, type ParsedArgs } from '../lib/flags.js';
import { CLIENT_TLS_FLAGS, clientTlsOf, describeError, SensorsClient, serverAddress, type ClientTlsOptions } from './client.js';
import { formatCompact } from './compact.js';
import { boundedLines } from './bounded-lines.js';
import { compileEventFilter, InvalidArgumentError, type FilterMessage } from '../lib/event-filters.js';
import { compileFieldFilters, FieldFilterError, FIELD_FILTER_ACTION, type FieldFilterMessage } from '../lib/field-filters.js';
import { EVENT_TYPES, type GetEventsResponse } from '../lib/event-model.js';
import { DEFAULT_SERVER_ADDRESS } from '../lib/defaults.js';

const RESPONSE = 'tetragon.GetEventsResponse';

/** The tetragon.GetEventsRequest that `vigil events` sends (and applies to piped events). */
interface EventsRequest { allow_list?: FilterMessage[]; field_filters?: FieldFilterMessage[] }

const FLAGS: FlagSpecs = {
  output: { kind: 'string', short: 'o', value: 'json|compact', help: 'Output format (default json)' },
  color: { kind: 'string', value: 'auto|always|never', help: 'Colour compact output; auto: when stdout is a terminal (default auto)' },
  timestamps: { kind: 'bool', help: 'Start compact lines with the event time' },
  server: { kind: 'string', aliases: ['server-address'], value: 'ADDR',
    help: `Server address, host:port or unix:///path (default $VIGIL_SERVER_ADDRESS, else ${DEFAULT_SERVER_ADDRESS})` },
  ...CLIENT_TLS_FLAGS,
  'event-types': { kind: 'list', short: 'e', commas: true, value: 'TYPES', help: 'Only these event types, e.g. process_exec,process_exit' },
  binary: { kind: 'list', aliases: ['process', 'processes'], value: 'REGEX', help: 'Only processes whose binary path matches (repeatable)' },
  pid: { kind: 'list', commas: true, value: 'PID', help: 'Only these process ids (repeatable)' },
  namespace: { kind: 'list', short: 'n', aliases: ['namespaces'], commas: true, value: 'NS', help: 'Only pods in these Kubernetes namespaces' },
  host: { kind: 'bool', help: 'Only host processes (not in a pod); with --namespace, those too' },
  pod: { kind: 'list', aliases: ['pods'], value: 'REGEX', help: 'Only pods whose name matches (repeatable)' },
  'container-id': { kind: 'list', value: 'REGEX', help: 'Only processes whose container id matches (repeatable)' },
  'include-fields': { kind: 'list', short: 'f', commas: true, value: 'FIELDS', help: 'Keep only these fields of the event, e.g. process.binary,parent' },
  'exclude-fields': { kind: 'list', short: 'F', commas: true, value: 'FIELDS', help: 'Drop these fields of the event, e.g. parent' },
  help: { kind: 'bool', short: 'h', help: 'Show this help' },
};

export const EVENTS_HELP = `Print events from the Vigil server, or from Tetragon JSON lines on stdin.

Usage: vigil events [flags]

When stdin is not a terminal (a pipe or a file), events are read from it, one
GetEventsResponse JSON per line, and the filters are applied locally;
otherwise they are streamed from the server. Lines that cannot be read, or
are longer than 4 MiB, are reported on stderr with their line number and
skipped.

Flags:
${formatFlags(FLAGS)}

Examples:
  vigil events -o compact --namespace default
  vigil events --binary '^/usr/bin/curl$' -e process_exec,process_exit
  vigil events -F parent
  cat events.json | vigil events -o compact --host`;

function warn(message: string): void {
  process.stderr.write(`vigil events: ${message}\n`);
}

/** The event type numbers of --event-types, given as enum names in either case. */
function eventTypes(values: string[]): number[] {
  const known = tetragonRoot.lookupEnum('tetragon.EventType').values;
  return values.map((v) => {
    const id = known[v.toUpperCase()];
    if (id === undefined || id === 0) {
      const names = Object.keys(known).filter((n) => known[n] !== 0).map((n) => n.toLowerCase());
      throw new UsageError(`unknown event type "${v}" in --event-types (known: ${names.join(', ')})`);
    }
    return id;
  });
}

function pids(values: string[]): number[] {
  return values.map((v) => {
    const n = /^\d+$/.test(v) ? Number(v) : NaN;
    if (!(n <= 0xffffffff)) throw new UsageError(`invalid --pid "${v}": expected a process id`);
    return n;
  });
}

function oneOf(flag: string, value: string, allowed: readonly string[]): string {
  if (!allowed.includes(value)) throw new UsageError(`invalid --${flag} "${value}": expected one of ${allowed.join(', ')}`);
  return value;
}

/** The GetEventsRequest the flags describe; only filters that were given are set, as tetra does. */
function requestOf(args: ParsedArgs): EventsRequest {
  const filter: Record<string, (string | number)[]> = {};
  const set = (key: keyof FilterMessage, values: (string | number)[]): void => {
    if (values.length > 0) filter[key] = values;
  };
  set('binary_regex', args.list('binary'));
  // tetra's --host: the empty namespace selects processes outside any pod.
  set('namespace', [...args.list('namespace'), ...(args.bool('host') ? [''] : [])]);
  set('pid', pids(args.list('pid')));
  set('event_set', eventTypes(args.list('event-types')));
  set('pod_regex', args.list('pod'));
  set('container_id', args.list('container-id'));

  const fieldFilters: FieldFilterMessage[] = [];
  const include = args.list('include-fields');
  const exclude = args.list('exclude-fields');
  if (include.length > 0) fieldFilters.push({ fields: { paths: include }, action: FIELD_FILTER_ACTION.INCLUDE });
  if (exclude.length > 0) fieldFilters.push({ fields: { paths: exclude }, action: FIELD_FILTER_ACTION.EXCLUDE });

  const request: EventsRequest = {};
  if (Object.keys(filter).length > 0) request.allow_list = [filter as FilterMessage];
  if (fieldFilters.length > 0) request.field_filters = fieldFilters;
  return request;
}

/** An event in Tetragon JSON as its output line; undefined when it has no compact form. */
type Render = (json: Record<string, unknown>) => string | undefined;

function rendererOf(args: ParsedArgs): Render {
  const output = oneOf('output', args.string('output') ?? 'json', ['json', 'compact']);
  const color = oneOf('color', args.string('color') ?? 'auto', ['auto', 'always', 'never']);
  if (output === 'json') return (json) => JSON.stringify(json);
  // auto follows the usual conventions: a terminal, NO_COLOR unset, TERM not dumb.
  const useColor = color === 'always'
    || (color === 'auto' && process.stdout.isTTY === true && !process.env.NO_COLOR && process.env.TERM !== 'dumb');
  const opts = { color: useColor, timestamps: args.bool('timestamps') };
  return (json) => formatCompact(json, opts);
}

const NO_COMPACT_FORM = 'no compact form for this event (an event type without one, or no process)';

/** tetra's rule: read events from stdin whenever it is not a character device (a terminal or /dev/null). */
function stdinIsPiped(): boolean {
  try {
    return !fs.fstatSync(0).isCharacterDevice();
  } catch {
    return false;
  }
}

async function writeLine(line: string): Promise<void> {
  if (!process.stdout.write(`${line}\n`)) await once(process.stdout, 'drain');
}

/**
 * The request as tetra applies it to piped events, with the server's own
 * filters: the event to print (field filters applied), or undefined.
 */
function selectorOf(request: EventsRequest): (event: GetEventsResponse) => GetEventsResponse | undefined {
  let passes: ReturnType<typeof compileEventFilter>;
  let mask: ReturnType<typeof compileFieldFilters>;
  try {
    passes = compileEventFilter(request);
    mask = compileFieldFilters(request.field_filters);
  } catch (err) {
    if (err instanceof InvalidArgumentError || err instanceof FieldFilterError) throw new UsageError(err.message);
    throw err;
  }
  return (event) => {
    const type = EVENT_TYPES.find((t) => event[t] !== undefined);
    if (type === undefined) return request.allow_list ? undefined : event;
    const envelope = { type, event, bytes: new Uint8Array() };
    return passes(envelope) ? (mask?.(envelope) ?? event) : undefined;
  };
}

/** Characters of one line on stdin: Tetragon's events are a few KiB; a longer line is skipped unread. */
const MAX_LINE_CHARS = 4 * 1024 * 1024;

/** Events from stdin. Unreadable lines are reported and skipped; the end of input is success. */
async function eventsFromStdin(request: EventsRequest, render: Render): Promise<number> {
  const select = selectorOf(request);
  process.stdin.setEncoding('utf8');
  let lineNo = 0;
  for await (const line of boundedLines(process.stdin, MAX_LINE_CHARS)) {
    lineNo++;
    if (line === null) {
      warn(`line ${lineNo}: longer than ${MAX_LINE_CHARS} characters, skipped`);
      continue;
    }
    if (line.trim() === '') continue;
    let event: GetEventsResponse;
    try {
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch (err) {
        throw new Error(`not JSON: ${(err as Error).message}`);
      }
      // Into the event model: validates the line; printed back in the canonical form.
      event = fromProtoJson<GetEventsResponse>(RESPONSE, parsed);
    } catch (err) {
      warn(`line ${lineNo}: ${(err as Error).message}`);
      continue;
    }
    const selected = select(event);
    if (selected === undefined) continue;
    const out = render(toProtoJson(RESPONSE, selected));
    if (out === undefined) warn(`line ${lineNo}: ${NO_COMPACT_FORM}`);
    else await writeLine(out);
  }
  return 0;
}

/** Events from the server until it ends the stream or the user interrupts; server errors exit 1. */
function eventsFromServer(address: string, tls: ClientTlsOptions | undefined, request: EventsRequest, render: Render): Promise<number> {
  const client = new SensorsClient(address, tls);
  const call = client.serverStream('GetEvents', request);
  return new Promise((resolve) => {
    const interrupt = (): void => call.cancel();
    process.on('SIGINT', interrupt);
    process.on('SIGTERM', interrupt);
    let done = false;
    const finish = (code: number): void => {
      if (done) return;
      done = true;
      process.off('SIGINT', interrupt);
      process.off('SIGTERM', interrupt);
      client.close();
      resolve(code);
    };
    call.on('data', (event: object) => {
      let out: string | undefined;
      try {
        out = render(toProtoJson(RESPONSE, event));
      } catch (err) {
        warn(`skipped an event: ${(err as Error).message}`);
        return;
      }
      if (out === undefined) {
        warn(`skipped an event: ${NO_COMPACT_FORM}`);
      } else if (!process.stdout.write(`${out}\n`)) {
        call.pause();
        process.stdout.once('drain', () => call.resume());
      }
    });
    call.on('end', () => finish(0));
    call.on('error', (err: grpc.ServiceError) => {
      // A cancelled call is how Ctrl-C ends the stream (and tetra treats any CANCELLED as the end).
      if (err.code === grpc.status.CANCELLED) return finish(0);
      warn(`GetEvents from ${address} failed: ${describeError(err)}`);
      finish(1);
    });
  });
}

/** Runs `vigil events`; resolves to the exit code. Throws UsageError for bad flags. */
export async function runEvents(argv: string[]): Promise<number> {
  const args = parseArgs(argv, FLAGS);
  if (args.bool('help')) {
    process.stdout.write(`${EVENTS_HELP}\n`);
    return 0;
  }
  if (args.positional.length > 0) throw new UsageError(`unexpected argument "${args.positional[0]}"`);
  const request = requestOf(args);
  const render = rendererOf(args);
  const tls = clientTlsOf(args);
  if (stdinIsPiped()) return eventsFromStdin(request, render);
  return eventsFromServer(serverAddress(args.string('server')), tls, request, render);
}
