/**
 * The split shape: `vigil sensor`, `vigil enforcer` and `vigil exporter` as
 * three processes over a real nats-server (JetStream) on loopback. Events of
 * real processes reach the stdout, file, Prometheus and OTLP exporters; a policy added
 * through the public address (forwarded to the enforcer) kills in the kernel;
 * a restarted sensor gets its policies back; a policy in the NATS KV is
 * loaded, replaced and unloaded with its key; and the agent shape yields the
 * same events for the same scenario.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { SensorsClient } from '../../services/cli/client.js';
import { startNatsServer, type NatsServer } from '../support/nats-server.js';
import { startService, type ServiceProcess } from '../support/service.js';
import { Received, grpcReceiver } from '../support/otlp-receiver.js';
import { startAgent } from '../support/agent.js';
import { PROBE, copyOf, openatHook, policyYaml, run, scratch, scratchFile } from '../support/policy.js';
import { waitFor } from '../support/wait.js';
import { connect } from 'nats';
import { PolicyKv } from '../../services/lib/nats/index.js';

let nats: NatsServer;
let sensor: ServiceProcess;
let enforcer: ServiceProcess;
let exporter: ServiceProcess;
let otlp: { port: number; close: () => Promise<void> };
const received = new Received();
const dir = fs.mkdtempSync(path.join(scratch, 'split-'));
const exportFile = path.join(dir, 'events.json');
const controlSocket = path.join(dir, 'control.sock');
const enforcerSocket = path.join(dir, 'enforcer.sock');
let sensorPort = 0;
let metricsPort = 0;

const sensorArgs = () => ['--node-name', 'split-node', '--nats-url', nats.url, '--control-socket', controlSocket,
  '--enforcer-address', `unix://${enforcerSocket}`, '--server-address', `localhost:${sensorPort}`, '--server-unix-socket', '',
  // The test adds policies over TCP, as a remote client would; policy changes over plaintext TCP are an opt-in.
  '--server-insecure-policy-changes'];

test.before(async () => {
  nats = await startNatsServer();
  otlp = await grpcReceiver(received);
  sensor = await startService('sensor', sensorArgs(), /gRPC API on port (\d+)/);
  sensorPort = Number((await sensor.waitFor(/gRPC API on port (\d+)/))[1]);
  const healthClient = new SensorsClient(`localhost:${sensorPort}`);
  const health = async () => (await healthClient.unary<{ health_status: { status: number; details: string }[] }>('GetHealth', {})).health_status[0]!;
  const away = await waitFor('the sensor\'s health to name the missing enforcer', async () => {
    const h = await health();
    return h.details.includes('enforcer') ? h : undefined;
  }, 10_000);
  assert.equal(away.status, 3, 'HEALTH_STATUS_RESULT_ERROR');
  enforcer = await startService('enforcer', ['--node-name', 'split-node', '--nats-url', nats.url, '--control-socket', controlSocket, '--server-unix-socket', enforcerSocket], /programming the sensor/);
  exporter = await startService('exporter', ['--nats-url', nats.url, '--export-stdout', '--export-file', exportFile, '--metrics-address', '127.0.0.1:0', '--metrics-prefix', 'tetragon', '--otel'],
    /consuming as/, { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${otlp.port}`, OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', OTEL_METRIC_EXPORT_INTERVAL: '500', OTEL_BLRP_SCHEDULE_DELAY: '200', OTEL_BSP_SCHEDULE_DELAY: '200' });
  metricsPort = Number((await exporter.waitFor(/metrics on port (\d+)/))[1]);
  await waitFor('the sensor\'s health to be running with the enforcer up', async () => ((await health()).status === 1 /* HEALTH_STATUS_RESULT_RUNNING */ ? true : undefined), 10_000);
  healthClient.close();
});

test.after(async () => {
  for (const s of [exporter, enforcer, sensor]) await s?.stop();
  await otlp?.close();
  await nats?.stop();
  fs.rmSync(scratch, { recursive: true, force: true });
});

function exportedLines(): Record<string, any>[] { // eslint-disable-line @typescript-eslint/no-explicit-any
  if (!fs.existsSync(exportFile)) return [];
  return fs.readFileSync(exportFile, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
}

test('events of real processes reach the stdout, file, Prometheus and OTLP exporters through NATS', async () => {
  const marker = scratchFile('split-marker');
  const cat = await run('/bin/cat', [marker]);
  const onStdout = await waitFor('the exec on the exporter\'s stdout', () => exporter.stdout().split('\n').find((l) => l.startsWith('{"process_exec"') && l.includes(marker)), 20_000);
  assert.equal(JSON.parse(onStdout).process_exec.process.pid, cat.pid);
  const exec = await waitFor('the exec in the export file', () => exportedLines().find((e) => e.process_exec?.process?.pid === cat.pid), 20_000);
  assert.equal(exec.node_name, 'split-node');
  assert.equal(exec.process_exec.process.arguments, marker);
  await waitFor('the exit in the export file', () => exportedLines().find((e) => e.process_exit?.process?.pid === cat.pid), 20_000);

  let text = '';
  // Events come through JetStream; the sensor's counters through its periodic stats.
  await waitFor('events_total and the sensor counters on /metrics', () => {
    void fetch(`http://127.0.0.1:${metricsPort}/metrics`).then((r) => r.text()).then((t) => { text = t; }).catch(() => undefined);
    return /tetragon_events_total\{[^}]*type="PROCESS_EXEC"[^}]*\} [1-9]/.test(text) && /tetragon_observer_ringbuf_events_received_total\{[^}]*node="split-node"[^}]*\} [1-9]/.test(text) ? true : undefined;
  }, 20_000);

  const log = await waitFor('the exec as an OTLP LogRecord', () => received.logs.find((l) => l.attributes['process.pid'] === cat.pid && /exec/.test(l.eventName)), 20_000);
  assert.equal(log.attributes['process.executable.path'], fs.realpathSync('/bin/cat'));
  await waitFor('the process span', () => received.spans.find((s) => s.attributes['process.pid'] === cat.pid), 20_000);
  await waitFor('OTLP metrics', () => (received.metrics.size > 0 ? true : undefined), 20_000);
});

test('a policy in the NATS KV is loaded, replaced only by a value that loads, and unloaded with its key', async () => {
  const nc = await connect({ servers: nats.url });
  const kv = await PolicyKv.open(nc);
  const client = new SensorsClient(`localhost:${sensorPort}`);
  const listed = async (): Promise<string[]> => ((await client.unary<{ policies?: { name: string }[] }>('ListTracingPolicies', {})).policies ?? []).map((p) => p.name);
  try {
    await kv.put('kv-policy', policyYaml('kv-policy', { kprobes: [openatHook([{ matchBinaries: [{ operator: 'In', values: ['/nonexistent/kv-v1'] }] }])] }));
    await waitFor('kv-policy loaded', async () => ((await listed()).includes('kv-policy') ? true : undefined));
    await kv.put('kv-policy', 'apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: kv-policy\nspec:\n  kprobes:\n    - call: sys_nosuchcall\n      syscall: true\n');
    await enforcer.waitFor(/kv:kv-policy: .*nosuchcall/);
    assert.ok((await listed()).includes('kv-policy'), 'the previous value keeps enforcing');
    await kv.delete('kv-policy');
    await waitFor('kv-policy unloaded', async () => ((await listed()).includes('kv-policy') ? undefined : true));
  } finally {
    client.close();
    await nc.close();
  }
});

test('a policy added at the public address is forwarded to the enforcer and kills in the kernel; a restarted sensor gets it back', async () => {
  const bin = copyOf(PROBE, 'split-victim');
  const target = scratchFile('split-target');
  const client = new SensorsClient(`localhost:${sensorPort}`);
  try {
    await client.unary('AddTracingPolicy', {
      yaml: policyYaml('split-kill', { kprobes: [openatHook([{ matchBinaries: [{ operator: 'In', values: [bin] }], matchArgs: [{ index: 1, operator: 'Equal', values: [target] }], matchActions: [{ action: 'Sigkill' }] }])] }),
    });
    const killed = await run(bin, ['open', target]);
    assert.equal(killed.signal, 'SIGKILL');
    const listed = await client.unary<{ policies?: { name: string }[] }>('ListTracingPolicies', {});
    assert.ok(listed.policies?.some((p) => p.name === 'split-kill'));
  } finally {
    client.close();
  }

  // Restart the sensor: it comes back empty, and the enforcer re-applies the policy.
  await sensor.stop();
  const downAt = Date.now();
  sensor = await startService('sensor', sensorArgs(), /gRPC API on port (\d+)/);
  const reapplied = await enforcer.waitFor(/re-applied 1 of 1, (\d+) ms without them/, 30_000);
  const gapMs = Number(reapplied[1]);
  assert.ok(gapMs >= 0);
  const after = await run(bin, ['open', target]);
  assert.equal(after.signal, 'SIGKILL', 'the re-applied policy kills again');
  console.log(`sensor restart: ${Date.now() - downAt} ms from stop to a killing sensor; enforcer-measured gap ${gapMs} ms`);
});

test('the agent shape yields the same events for the same scenario', async () => {
  const agent = await startAgent(['--node-name', 'split-node'], 'pipe');
  let agentOut = '';
  agent.child.stdout!.on('data', (d: Buffer) => { agentOut += d.toString(); });
  try {
    await new Promise((r) => setTimeout(r, 300));
    const marker = scratchFile('both-shapes');
    const cat = await run('/bin/cat', [marker]);
    const shapeOf = (e: Record<string, any>) => { // eslint-disable-line @typescript-eslint/no-explicit-any
      const type = e.process_exec ? 'process_exec' : 'process_exit';
      const p = (e.process_exec ?? e.process_exit).process;
      return { type, node: e.node_name, pid: p.pid, binary: p.binary, arguments: p.arguments, cwd: p.cwd, parent: (e.process_exec ?? e.process_exit).parent?.exec_id };
    };
    const fromSplit = await waitFor('both events from the split shape', () => {
      const got = exportedLines().filter((e) => (e.process_exec ?? e.process_exit)?.process?.pid === cat.pid);
      return got.length === 2 ? got.map(shapeOf) : undefined;
    }, 20_000);
    const fromAgent = await waitFor('both events from the agent', () => {
      const got = agentOut.split('\n').filter((l) => l.includes(marker)).map((l) => JSON.parse(l)).filter((e) => (e.process_exec ?? e.process_exit)?.process?.pid === cat.pid);
      return got.length === 2 ? got.map(shapeOf) : undefined;
    }, 20_000);
    // Two sensors side by side stamp their own record times, so exec_ids of new
    // processes differ; everything else, the parent's identity included, is the same.
    assert.deepEqual(fromAgent.sort((a, b) => a.type.localeCompare(b.type)), fromSplit.sort((a, b) => a.type.localeCompare(b.type)));
  } finally {
    await agent.stop();
  }
});
