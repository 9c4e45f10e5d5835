/**
 * Tetragon's `tetra` CLI (v0.11) against a real `vigil agent`: the agent runs
 * as a separate process on the real kernel with a private containerd for pods,
 * and this file speaks to it exactly as tetra v0.11 does (cmd/tetra in
 * Tetragon's tree): the same rpcs with the same request fields, and the
 * answers printed as tetra prints them (compact lines through Vigil's own
 * encoder, as `vigil events` prints them).
 *
 * What tetra v0.11 sends:
 *  - status: GetHealth({}) and prints `Health Status: <health_status[0].details>`;
 *  - version --server: GetVersion({}), `Server version: <version>` (after its own `CLI version:`);
 *  - tracingpolicy add FILE: AddTracingPolicy({yaml}); delete NAME: DeleteTracingPolicy({name})
 *    (no namespace: v0.11 has no --namespace there); both print nothing on success and
 *    `failed to ... tracing policy: <Go status error>` on failure;
 *  - tracingpolicy list: ListTracingPolicies({}); text `<id> <name> (<info>) <namespace|(global)> <sensors,>`,
 *    -o json the response as protojson (v0.11's fields only);
 *  - getevents: GetEvents with always exactly one allow_list Filter holding the flags that were
 *    given (--processes → binary_regex, --namespaces → namespace, --pods → pod_regex, --host adds
 *    "" to namespace; the deprecated singular flags are appended to the plural ones), -f/-F as
 *    field filters; -o json prints protojson lines, -o compact the compact encoder's lines.
 *    --event-types (event_set in the same Filter) came with tetra v1.0 and is covered too.
 *
 * The request shapes below were checked against a real tetra v0.11 binary on the wire.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { SensorsClient } from '../../services/cli/client.js';
import { formatCompact } from '../../services/cli/compact.js';
import { decodeMessage, encodeMessage, tetragonRoot, tetragonType, toProtoJson } from '../../services/lib/tetragon-proto.js';
import { repoRoot } from '../../services/lib/paths.js';
import { VERSION } from '../../services/lib/version.js';
import { startAgent, type AgentProcess } from '../support/agent.js';
import { buildBusyboxImage, hexId, removeContainer, runContainer, startContainerd, stopContainer, type Containerd } from '../support/containerd.js';
import { copyOf, openatHook, policyYaml, run, scratch, scratchFile, type RunResult } from '../support/policy.js';
import { exited, waitFor } from '../support/wait.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const NODE = 'tetra-node';
const RUN = crypto.randomBytes(4).toString('hex');
const IMAGE = 'vigil.test/busybox:latest';
const RESPONSE = 'tetragon.GetEventsResponse';
const EVENT_FIELDS = new Set(tetragonType(RESPONSE).oneofs!['event']!.fieldsArray.map((f) => f.name));
/** The source column of a host process in compact lines: tetra prints the node name, Vigil's encoder `host`. */
const HOST = `(?:host|${NODE})`;
const CAPS = '(?: +🛑 CAP_SYS_ADMIN)?';

let ctd: Containerd;
let agent: AgentProcess;
let client: SensorsClient;
const containers: string[] = [];
/** CLI processes, ended at the latest by after(). */
const children: ChildProcess[] = [];

test.before(async () => {
  ctd = await startContainerd();
  await buildBusyboxImage(ctd, IMAGE);
  agent = await startAgent(['--node-name', NODE, '--containerd-socket', ctd.socket]);
  client = new SensorsClient(`localhost:${agent.port}`);
});

test.after(async () => {
  for (const stream of streams) stream.stop();
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  client?.close();
  for (const id of containers) {
    await stopContainer(ctd, id).catch(() => undefined);
    await removeContainer(ctd, id).catch(() => undefined);
  }
  await agent?.stop();
  await ctd?.stop();
  fs.rmSync(scratch, { recursive: true, force: true });
});

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// ---------------------------------------------------------------------------
// tetra v0.11, as requests and printed output

/** Go's codes.Code names, as in `rpc error: code = NotFound desc = ...`. */
function goCode(code: grpc.status): string {
  if (code === grpc.status.CANCELLED) return 'Canceled';
  return (grpc.status[code] ?? String(code)).toLowerCase().replace(/(^|_)([a-z])/g, (_m, _u, c: string) => c.toUpperCase());
}

/** A unary call as tetra makes it: the response, or the Go error text it prints. */
async function call<Res>(method: string, request: object): Promise<{ res?: Res; err?: string }> {
  try {
    return { res: await client.unary<Res>(method, request) };
  } catch (err) {
    const e = err as grpc.ServiceError;
    return { err: `rpc error: code = ${goCode(e.code)} desc = ${e.details}` };
  }
}

const tetra = {
  /** `tetra status` */
  async status(): Promise<string> {
    const { res, err } = await call<{ health_status: { details?: string }[] }>('GetHealth', {});
    return err !== undefined ? `status error: ${err}\n` : `Health Status: ${res!.health_status[0]!.details ?? ''}\n`;
  },
  /** `tetra version --server`, less its first line (the CLI's own version). */
  async serverVersion(): Promise<string> {
    const { res, err } = await call<{ version?: string }>('GetVersion', {});
    return err !== undefined ? `error retrieving server version: ${err}\n` : `Server version: ${res!.version ?? ''}\n`;
  },
  /** `tetra tracingpolicy add FILE` */
  async add(file: string): Promise<string> {
    const { err } = await call('AddTracingPolicy', { yaml: fs.readFileSync(file, 'utf8') });
    return err === undefined ? '' : `failed to add tracing policy: ${err}\n`;
  },
  /** `tetra tracingpolicy delete NAME` */
  async delete(name: string): Promise<string> {
    const { err } = await call('DeleteTracingPolicy', { name });
    return err === undefined ? '' : `failed to delete tracing policy: ${err}\n`;
  },
  /** `tetra tracingpolicy list [-o json]` (v0.11 knows id, name, namespace, info and sensors of a TracingPolicyStatus). */
  async list(output: 'text' | 'json' = 'text'): Promise<string> {
    const { res, err } = await call<object>('ListTracingPolicies', {});
    if (err !== undefined) throw new Error(`failed to list tracing policies: ${err}`);
    const json = toProtoJson('tetragon.ListTracingPoliciesResponse', res!) as { policies?: Json[] };
    const policies = (json.policies ?? []).map((p) => Object.fromEntries(['id', 'name', 'namespace', 'info', 'sensors'].filter((k) => k in p).map((k) => [k, p[k]])));
    if (output === 'json') return `${JSON.stringify(policies.length === 0 ? {} : { policies })}\n`;
    return policies.map((p) => `${p.id ?? 0} ${p.name ?? ''} (${p.info ?? ''}) ${p.namespace || '(global)'} ${(p.sensors ?? []).join(',')}\n`).join('');
  },
};

interface GetEventsFlags {
  output?: 'json' | 'compact';
  namespaces?: string[];
  /** Deprecated spelling of --namespaces. */
  namespace?: string[];
  pods?: string[];
  pod?: string[];
  processes?: string[];
  process?: string[];
  host?: boolean;
  /** tetra v1.0 and later. */
  eventTypes?: string[];
  includeFields?: string[];
  excludeFields?: string[];
}

/** The GetEventsRequest of `tetra getevents` (cmd/tetra/getevents: GetFilter and getRequest). */
function tetraRequest(flags: GetEventsFlags): Json {
  const namespaces = [...(flags.namespaces ?? []), ...(flags.namespace ?? [])];
  const pods = [...(flags.pods ?? []), ...(flags.pod ?? [])];
  const processes = [...(flags.processes ?? []), ...(flags.process ?? [])];
  if (flags.host === true) namespaces.push('');
  const filter: Json = {};
  if (processes.length > 0) filter.binary_regex = processes;
  if (namespaces.length > 0) filter.namespace = namespaces;
  if (pods.length > 0) filter.pod_regex = pods;
  if ((flags.eventTypes ?? []).length > 0) {
    const known = tetragonRoot.lookupEnum('tetragon.EventType').values;
    filter.event_set = flags.eventTypes!.map((name) => {
      if (known[name] === undefined) throw new Error(`invalid value for "event-types" flag: ${name}`);
      return known[name];
    });
  }
  // Go leaves zero values (INCLUDE, the empty event_set) off the wire.
  const fieldFilters: Json[] = [];
  if ((flags.includeFields ?? []).length > 0) fieldFilters.push({ fields: { paths: flags.includeFields } });
  if ((flags.excludeFields ?? []).length > 0) fieldFilters.push({ fields: { paths: flags.excludeFields }, action: 1 });
  return { field_filters: fieldFilters, allow_list: [filter] };
}

/** What a request is on the wire, decoded: the form to compare requests in. */
const onWire = (request: object): Json => decodeMessage('tetragon.GetEventsRequest', encodeMessage('tetragon.GetEventsRequest', request));

interface Received { json: Json; line: string }

interface EventStream {
  received: Received[];
  errors: grpc.ServiceError[];
  stop(): void;
}

const streams: EventStream[] = [];

/** `tetra getevents ...`: the lines it prints, with the protojson of the event behind each. */
function getevents(flags: GetEventsFlags): EventStream {
  const stream = client.serverStream('GetEvents', tetraRequest(flags));
  const out: EventStream = { received: [], errors: [], stop: () => stream.cancel() };
  stream.on('data', (event: object) => {
    const json = toProtoJson(RESPONSE, event) as Json;
    // The compact encoder skips what it has no form for (tetra logs it at debug level).
    const line = flags.output === 'compact' ? formatCompact(json, { color: false }) : JSON.stringify(json);
    if (line !== undefined) out.received.push({ json, line });
  });
  stream.on('error', (err: grpc.ServiceError) => {
    if (err.code !== grpc.status.CANCELLED) out.errors.push(err);
  });
  streams.push(out);
  return out;
}

const typeOf = (json: Json): string => Object.keys(json).find((k) => EVENT_FIELDS.has(k)) ?? '';
const processOf = (json: Json): Json | undefined => json[typeOf(json)]?.process;
const pidOf = (json: Json): number | undefined => processOf(json)?.pid;

function find(s: EventStream, type: string, pid: number): Received | undefined {
  return s.received.find((r) => typeOf(r.json) === type && pidOf(r.json) === pid);
}

/**
 * Runs `trigger` until `probe` finds what it looks for in the streams: a
 * stream shows a process's events once its subscription is in place, so this
 * also waits (boundedly) for that.
 */
async function untilSeen<T>(what: string, trigger: () => Promise<RunResult>, probe: (r: RunResult) => T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await trigger();
    const found = await waitFor(what, () => probe(r), 1_500).catch(() => undefined);
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
  }
}

function noErrors(...ss: EventStream[]): void {
  for (const s of ss) assert.deepEqual(s.errors.map((e) => `${grpc.status[e.code]}: ${e.details}`), []);
}

// ---------------------------------------------------------------------------

test("tetra's flags become the requests it sends (one allow_list Filter, deprecated flags appended)", () => {
  // Each as a real tetra v0.11 put it on the wire.
  const cases: [GetEventsFlags, Json][] = [
    [{}, { allow_list: [{}] }],
    [{ namespace: ['a'], namespaces: ['b', 'c'] }, { allow_list: [{ namespace: ['b', 'c', 'a'] }] }],
    [{ pod: ['x'], pods: ['y'] }, { allow_list: [{ pod_regex: ['y', 'x'] }] }],
    [{ process: ['p'], processes: ['q', 'r'] }, { allow_list: [{ binary_regex: ['q', 'r', 'p'] }] }],
    [{ host: true }, { allow_list: [{ namespace: [''] }] }],
    [{ host: true, namespaces: ['default'] }, { allow_list: [{ namespace: ['default', ''] }] }],
    [{ includeFields: ['process.binary'], excludeFields: ['parent'] },
      { allow_list: [{}], field_filters: [{ fields: { paths: ['process.binary'] } }, { fields: { paths: ['parent'] }, action: 1 }] }],
    [{ output: 'compact', namespace: ['ns'], pod: ['pd'], process: ['pr'] }, { allow_list: [{ binary_regex: ['pr'], namespace: ['ns'], pod_regex: ['pd'] }] }],
    // tetra v1.0's --event-types: in the same Filter.
    [{ processes: ['cat'], eventTypes: ['PROCESS_EXIT'] }, { allow_list: [{ binary_regex: ['cat'], event_set: [5] }] }],
  ];
  for (const [flags, wire] of cases) assert.deepEqual(onWire(tetraRequest(flags)), wire, JSON.stringify(flags));
  assert.throws(() => tetraRequest({ eventTypes: ['process_exit'] }), /invalid value for "event-types" flag: process_exit/);
});

test('tetra status and version --server', async () => {
  assert.equal(await tetra.status(), 'Health Status: running\n');
  assert.equal(await tetra.serverVersion(), `Server version: ${VERSION}\n`);
});

test('tracingpolicy add, list (text and json), its events in getevents, delete', async () => {
  const bin = copyOf('/bin/cat', 'tp-cat');
  const name = `tetra-compat-${RUN}`;
  const file = path.join(scratch, 'tetra-policy.yaml');
  // Post only, in monitor mode, and only for a binary that only this test runs: it acts on nothing.
  fs.writeFileSync(file, policyYaml(name, {
    kprobes: [openatHook([{ matchBinaries: [{ operator: 'In', values: [bin] }], matchActions: [{ action: 'Post' }] }])],
  }, 'monitor'));
  const events = getevents({ processes: [`^${escape(bin)}$`] });

  assert.equal(await tetra.add(file), '', 'tetra prints nothing when the policy is added');
  try {
    const text = await tetra.list();
    const line = text.split('\n').find((l) => l.includes(` ${name} `));
    assert.match(line ?? '', new RegExp(`^(\\d+) ${name} \\(.*\\) \\(global\\) generic_kprobe$`), text);
    const id = line!.split(' ')[0];
    const json = JSON.parse(await tetra.list('json')) as { policies: Json[] };
    const listed = json.policies.find((p) => p.name === name)!;
    assert.deepEqual({ id: listed.id, name: listed.name, namespace: listed.namespace, sensors: listed.sensors },
      { id, name, namespace: undefined, sensors: ['generic_kprobe'] });
    // What tetra 1.x shows of it (v0.11 drops these fields): loaded and in monitor mode.
    const full = (await client.unary<{ policies: Json[] }>('ListTracingPolicies', {})).policies.find((p) => p.name === name)!;
    const state = tetragonRoot.lookupEnum('tetragon.TracingPolicyState').values;
    const mode = tetragonRoot.lookupEnum('tetragon.TracingPolicyMode').values;
    assert.deepEqual([full.state, full.mode], [state.TP_STATE_ENABLED, mode.TP_MODE_MONITOR]);

    assert.match(await tetra.add(file), /^failed to add tracing policy: rpc error: code = \w+ desc = .*already exists/);

    // The policy's events, as getevents --processes shows them.
    const marker = scratchFile('tp-marker');
    const opened = await untilSeen('the policy event of the open', () => run(bin, [marker]), (r) => events.received.find((e) => {
      const k = e.json.process_kprobe;
      return k?.process?.pid === r.pid && (k.args ?? []).some((a: Json) => a.string_arg === marker || a.file_arg?.path === marker) ? e : undefined;
    }));
    const kprobe = opened.json.process_kprobe;
    assert.equal(kprobe.policy_name, name);
    assert.match(kprobe.function_name, /sys_openat$/);
    assert.equal(kprobe.action, 'KPROBE_ACTION_POST');
    assert.equal(kprobe.process.binary, bin);
    const exit = await waitFor('the exit of the run', () => find(events, 'process_exit', kprobe.process.pid));
    assert.equal(exit.json.process_exit.signal, undefined, 'monitor mode, Post only: nothing is killed');
    assert.equal(exit.json.process_exit.status ?? 0, 0);
  } finally {
    assert.equal(await tetra.delete(name), '', 'tetra prints nothing when the policy is deleted');
  }
  assert.ok(!(await tetra.list()).includes(` ${name} `), 'gone from the list');
  assert.match(await tetra.delete(name), /^failed to delete tracing policy: rpc error: code = \w+ desc = .*does not exist/);

  // Deleted: a run's events end with its exit and hold no policy event any more.
  const after = await run(bin, [scratchFile('tp-after')]);
  await waitFor('the exit of the run after the delete', () => find(events, 'process_exit', after.pid));
  assert.equal(events.received.filter((e) => e.json.process_kprobe?.process?.pid === after.pid).length, 0);
  events.stop();
  noErrors(events);
});

test('getevents --process: only that binary, as JSON lines (-o json) and as compact lines (-o compact)', async () => {
  const bin = copyOf('/bin/cat', 'tcat');
  const regex = `^${escape(bin)}$`;
  const json = getevents({ processes: [regex] });
  const compact = getevents({ output: 'compact', process: [regex] });
  const marker = scratchFile('process-marker');

  const first = await untilSeen('the exec on both streams', () => run(bin, [marker]),
    (r) => (find(json, 'process_exec', r.pid) && find(compact, 'process_exec', r.pid) ? r : undefined));
  // Other binaries, /bin/cat itself among them, then one more run of the copy: once its exit
  // is in, whatever the others would have sent is too (the sensor's ring buffer keeps order).
  const others = [await run('/bin/cat', [marker]), await run('/bin/true', [])];
  const fence = await run(bin, [marker]);
  await waitFor('the exit of the last run on both streams', () => (find(json, 'process_exit', fence.pid) && find(compact, 'process_exit', fence.pid) ? true : undefined));
  json.stop();
  compact.stop();
  noErrors(json, compact);

  for (const s of [json, compact]) {
    assert.deepEqual([...new Set(s.received.map((r) => processOf(r.json)?.binary))], [bin], 'only the binary asked for');
    assert.ok(!s.received.some((r) => others.some((o) => pidOf(r.json) === o.pid)));
  }

  // -o json: one protojson object per line, Tetragon's field names and forms.
  for (const r of json.received) assert.deepEqual(JSON.parse(r.line), r.json);
  const exec = JSON.parse(find(json, 'process_exec', first.pid)!.line);
  assert.deepEqual(Object.keys(exec).sort(), ['node_name', 'process_exec', 'time']);
  assert.equal(exec.node_name, NODE);
  assert.match(exec.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$/);
  assert.equal(exec.process_exec.process.binary, bin);
  assert.equal(exec.process_exec.process.arguments, marker);
  assert.equal(exec.process_exec.process.pid, first.pid);
  assert.equal(typeof exec.process_exec.process.exec_id, 'string');
  assert.equal(exec.process_exec.process.pod, undefined, 'a host process has no pod');
  const exit = JSON.parse(find(json, 'process_exit', first.pid)!.line);
  assert.equal(exit.process_exit.process.exec_id, exec.process_exec.process.exec_id);
  assert.equal(exit.process_exit.status ?? 0, 0);

  // -o compact
  assert.match(find(compact, 'process_exec', first.pid)!.line, new RegExp(`^🚀 process ${HOST} ${escape(bin)} ${escape(marker)}${CAPS}$`));
  assert.match(find(compact, 'process_exit', first.pid)!.line, new RegExp(`^💥 exit {4}${HOST} ${escape(bin)} ${escape(marker)} 0${CAPS}$`));
});

test('getevents --event-types PROCESS_EXIT (tetra 1.0): only exits', async () => {
  const bin = copyOf('/bin/cat', 'exit-cat');
  const regex = `^${escape(bin)}$`;
  const exits = getevents({ processes: [regex], eventTypes: ['PROCESS_EXIT'], output: 'compact' });
  const execs = getevents({ processes: [regex], eventTypes: ['PROCESS_EXEC'] });
  const marker = scratchFile('exit-marker');
  const seen = await untilSeen('the exit and the exec', () => run(bin, [marker]),
    (r) => (find(exits, 'process_exit', r.pid) && find(execs, 'process_exec', r.pid) ? r : undefined));
  const fence = await run(bin, [marker]);
  await waitFor('the last run on both streams', () => (find(exits, 'process_exit', fence.pid) && find(execs, 'process_exec', fence.pid) ? true : undefined));
  exits.stop();
  execs.stop();
  noErrors(exits, execs);

  assert.deepEqual([...new Set(exits.received.map((r) => typeOf(r.json)))], ['process_exit']);
  assert.deepEqual([...new Set(execs.received.map((r) => typeOf(r.json)))], ['process_exec']);
  assert.ok(exits.received.every((r) => r.line.startsWith('💥 exit ')), exits.received.map((r) => r.line).join('\n'));
  assert.match(find(exits, 'process_exit', seen.pid)!.line, new RegExp(`^💥 exit {4}${HOST} ${escape(bin)} ${escape(marker)} 0${CAPS}$`));
});

test('getevents --namespace, --pod (and both), --host: pods of real containers, host processes apart', async () => {
  const ns = `tetra-${RUN}`;
  const otherNs = `tetra-other-${RUN}`;
  const hostBin = copyOf('/bin/cat', 'host-cat');
  const inNs = getevents({ output: 'compact', namespace: [ns] });
  const web = getevents({ pod: ['^web$'] });
  const nsAndDb = getevents({ namespaces: [ns], pods: ['^db$'] });
  const inOtherNs = getevents({ namespaces: [otherNs] });
  const host = getevents({ output: 'compact', host: true });
  // The repository's own client, with tetra's plural flag spellings.
  const cli = spawn(process.execPath, [path.join(repoRoot, 'bin', 'vigil.js'), 'events', '--server', `localhost:${agent.port}`,
    '-o', 'compact', '--color', 'never', '--timestamps', '--namespaces', ns, '--pods', '^db$'], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(cli);
  let cliOut = '';
  let cliErr = '';
  cli.stdout.on('data', (d: Buffer) => { cliOut += d.toString(); });
  cli.stderr.on('data', (d: Buffer) => { cliErr += d.toString(); });

  // Each pod opens /etc/passwd again and again, so every stream sees its events whenever it got live.
  const loop = 'while true; do cat /etc/passwd > /dev/null; sleep 0.2; done';
  for (const [namespace, pod] of [[ns, 'web'], [ns, 'db'], [otherNs, 'web']] as const) {
    const id = hexId();
    containers.push(id);
    await runContainer(ctd, {
      id, image: IMAGE, detach: true, args: ['sh', '-c', loop], cgroupParent: `/kubepods/besteffort/pod${crypto.randomUUID()}`,
      labels: { 'io.kubernetes.pod.name': pod, 'io.kubernetes.pod.namespace': namespace, 'io.kubernetes.container.name': 'main' },
    });
  }
  const podOf = (r: Received): string => {
    const pod = processOf(r.json)?.pod;
    return pod === undefined ? '' : `${pod.namespace}/${pod.name}`;
  };
  const catOf = (s: EventStream, pod: string): Received | undefined =>
    s.received.find((r) => podOf(r) === pod && typeOf(r.json) === 'process_exec' && processOf(r.json)?.arguments === '/etc/passwd');
  const hostRun = await untilSeen('the host run on the --host stream', () => run(hostBin, ['/etc/hostname']),
    (r) => (find(host, 'process_exit', r.pid) ? r : undefined));
  await waitFor('the cat of each pod on the streams that select it', () => (
    catOf(inNs, `${ns}/web`) && catOf(inNs, `${ns}/db`) && catOf(web, `${ns}/web`) && catOf(web, `${otherNs}/web`)
    && catOf(nsAndDb, `${ns}/db`) && catOf(inOtherNs, `${otherNs}/web`) ? true : undefined), 20_000);

  // Fence: events up to the latest one seen anywhere have reached every stream once each stream has one from well after it.
  const millis = (r: Received): number => Date.parse(r.json.time as string);
  const latest = Math.max(...[inNs, web, nsAndDb, inOtherNs, host].flatMap((s) => s.received.map(millis)));
  const cliLines = (): string[] => cliOut.split('\n').filter((l) => l !== '');
  await waitFor('events from after the fence on every pod stream', () =>
    [inNs, web, nsAndDb, inOtherNs].every((s) => s.received.some((r) => millis(r) > latest + 500))
    && cliLines().some((l) => Date.parse(l.split(' ')[0]!) > latest + 500) ? true : undefined, 10_000)
    .catch((err: Error) => { throw new Error(`${err.message}; vigil events: ${cliOut.slice(-500)}${cliErr}`); });
  cli.kill('SIGINT');
  assert.deepEqual(await exited(cli), { code: 0, signal: null }, cliErr);
  for (const s of [inNs, web, nsAndDb, inOtherNs, host]) s.stop();
  noErrors(inNs, web, nsAndDb, inOtherNs, host);

  const pods = (s: EventStream): string[] => [...new Set(s.received.map(podOf))].sort();
  assert.deepEqual(pods(inNs), [`${ns}/db`, `${ns}/web`], '--namespace: both pods of the namespace, nothing else (no host process)');
  assert.deepEqual(pods(web), [`${otherNs}/web`, `${ns}/web`].sort(), '--pod: that pod name in any namespace');
  assert.deepEqual(pods(nsAndDb), [`${ns}/db`], '--namespace and --pod in one Filter: both must hold');
  assert.deepEqual(pods(inOtherNs), [`${otherNs}/web`]);
  assert.ok(cliLines().every((l) => l.split(/ +/)[3] === `${ns}/db`), `vigil events: only ${ns}/db\n${cliOut}${cliErr}`);
  assert.ok(cliLines().some((l) => new RegExp(`^\\S+ 🚀 process ${ns}/db /bin/busybox /etc/passwd${CAPS}$`).test(l)), cliOut);
  assert.deepEqual(pods(host), [''], '--host: host processes only');
  assert.ok(!inNs.received.some((r) => pidOf(r.json) === hostRun.pid));

  // Compact lines name the pod as namespace/pod; the host stream has the host run.
  assert.match(catOf(inNs, `${ns}/web`)!.line, new RegExp(`^🚀 process ${ns}/web /bin/busybox /etc/passwd${CAPS}$`));
  assert.ok(inNs.received.every((r) => r.line.split(/ +/)[2]!.startsWith(`${ns}/`)), 'every compact line is of a pod of the namespace');
  assert.match(find(host, 'process_exec', hostRun.pid)!.line, new RegExp(`^🚀 process ${HOST} ${escape(hostBin)} /etc/hostname${CAPS}$`));
  const webExec = catOf(web, `${ns}/web`)!.json.process_exec.process;
  assert.equal(webExec.pod.container.name, 'main');
  assert.equal(webExec.binary, '/bin/busybox');
});
