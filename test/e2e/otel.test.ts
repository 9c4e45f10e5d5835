/**
 * The OTLP exporter against a receiver in this test, over gRPC (a @grpc/grpc-js
 * server implementing the collector's logs, trace and metrics Export) and
 * over http/protobuf (a plain HTTP server), both on loopback and configured
 * only by OTEL_* variables, as a user would. The receiver decodes with the
 * OTLP .proto files that an npm package ships (devDependency
 * otlp-proto-files).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { LocalBus } from '../../services/lib/bus.js';
import type { Process } from '../../services/lib/event-model.js';
import { startExporters, type Exporters } from '../../services/exporter/index.js';
import { spanIdOf, traceIdOf } from '../../services/exporter/otel.js';
import { execEvent, exitEvent, kprobeEvent, makeProcess } from '../support/synthetic-events.js';
import { Received, grpcReceiver, httpReceiver, type Json, type SpanRec } from '../support/otlp-receiver.js';

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const OTEL_ENV = ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_SERVICE_NAME', 'OTEL_RESOURCE_ATTRIBUTES', 'OTEL_METRIC_EXPORT_INTERVAL', 'OTEL_BLRP_SCHEDULE_DELAY', 'OTEL_BSP_SCHEDULE_DELAY'];

/** Starts the exporters with these OTEL_* variables, as the agent reads them from its environment. */
async function startOtel(bus: LocalBus, env: Record<string, string>): Promise<Exporters> {
  for (const name of OTEL_ENV) delete process.env[name];
  Object.assign(process.env, { OTEL_METRIC_EXPORT_INTERVAL: '200', OTEL_BLRP_SCHEDULE_DELAY: '50', OTEL_BSP_SCHEDULE_DELAY: '50' }, env);
  return startExporters(bus, { otel: true }, { version: '9.9.9-test', log: () => {} });
}

const pod = { namespace: 'shop', name: 'nginx-priv-6db9787dc9-d5jsx', container: { id: 'containerd://0123abcd', name: 'nginx' } };

test('over gRPC: log records with attributes on the record, process spans linked to their parents, metrics', async () => {
  const received = new Received();
  const receiver = await grpcReceiver(received);
  const bus = new LocalBus();
  const exporters = await startOtel(bus, {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.port}`,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
    OTEL_SERVICE_NAME: 'vigil-e2e',
    OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=e2e',
  });
  try {
    // containerd-shim started before the exporter: its exec is never seen.
    const shim = makeProcess({ pid: 100, binary: '/usr/bin/containerd-shim' });
    const parent = makeProcess({ pid: 200, binary: '/usr/sbin/nginx', args: '-g "daemon off;"', parent: shim, pod });
    const child = makeProcess({ pid: 201, binary: '/usr/sbin/nginx', args: '-g "daemon off;"', parent, pod, uid: 101, cwd: '/srv' });
    bus.publishEvent(execEvent(parent, shim));
    bus.publishEvent(execEvent(child, parent));
    bus.publishEvent(kprobeEvent(child, 'deny-privileged-pod-start', 'fd_install', 3));
    bus.publishEvent(kprobeEvent(child, 'deny-privileged-pod-start', 'fd_install', 3, ['not-applied']));
    bus.publishEvent(kprobeEvent(child, 'audit-open', 'fd_install', 1));
    bus.publishEvent(exitEvent(child, parent, { signal: 'SIGKILL' }));
    bus.publishEvent(exitEvent(parent, shim, { status: 1 }));
    bus.publishEvent(exitEvent(shim));

    await until('8 log records and 3 spans', () => (received.logs.length >= 8 && received.spans.length >= 3 ? true : undefined));
    await until('events counted in the OTLP metrics', () => (received.metrics.get('vigil_events')?.reduce((n, p) => n + p.value, 0) === 8 ? true : undefined));
    await until('the export outcomes in the OTLP metrics', () =>
      (received.metrics.get('vigil_export')?.some((p) => p.attributes.exporter === 'otlp_logs' && p.attributes.outcome === 'exported' && p.value === 8) ? true : undefined));

    // Log records: event names, severities, attributes on the record, the resource being Vigil.
    const logs = received.logs;
    assert.deepEqual(logs.map((l) => l.eventName), [
      'vigil.process_exec', 'vigil.process_exec', 'vigil.process_kprobe', 'vigil.process_kprobe', 'vigil.process_kprobe',
      'vigil.process_exit', 'vigil.process_exit', 'vigil.process_exit',
    ]);
    assert.deepEqual(logs.map((l) => l.severityText), ['INFO', 'INFO', 'ERROR', 'WARN', 'WARN', 'INFO', 'INFO', 'INFO']);
    assert.deepEqual(logs.map((l) => l.severityNumber), [9, 9, 17, 13, 13, 9, 9, 9]);
    const childExec = logs[1]!;
    assert.deepEqual(childExec.attributes, {
      'process.pid': 201,
      'process.parent_pid': 200,
      'process.executable.path': '/usr/sbin/nginx',
      'process.executable.name': 'nginx',
      'process.command_args': ['/usr/sbin/nginx', '-g', 'daemon off;'],
      'process.user.id': 101,
      'process.working_directory': '/srv',
      'container.id': '0123abcd',
      'container.name': 'nginx',
      'k8s.pod.name': pod.name,
      'k8s.namespace.name': 'shop',
      'vigil.exec_id': child.exec_id,
      'vigil.parent_exec_id': parent.exec_id,
      'vigil.node_name': 'test-node',
    });
    assert.equal((childExec.body.process_exec as Json & { process: Json }).process.exec_id, child.exec_id, 'the body is the Tetragon JSON');
    assert.equal(childExec.resource['service.name'], 'vigil-e2e');
    assert.equal(childExec.resource['service.version'], '9.9.9-test');
    assert.equal(childExec.resource['deployment.environment'], 'e2e');
    assert.equal(childExec.resource['process.pid'], undefined, 'process attributes are on the records, not the resource');
    const kill = logs[2]!;
    assert.equal(kill.attributes['vigil.policy_name'], 'deny-privileged-pod-start');
    assert.equal(kill.attributes['vigil.action'], 'KPROBE_ACTION_SIGKILL');
    assert.equal(kill.attributes['vigil.hook'], 'fd_install');
    assert.equal(kill.attributes['vigil.action_applied'], true);
    assert.equal(logs[3]!.attributes['vigil.action_applied'], false);
    const childExit = logs[5]!;
    assert.equal(childExit.attributes['vigil.exit_signal'], 'SIGKILL');
    // Every record carries its process's span context.
    for (const l of logs.slice(1, 6)) assert.deepEqual([l.traceId, l.spanId], [traceIdOf(shim.exec_id), spanIdOf(child.exec_id)]);

    // Spans: the child's parent is the parent's span, in one trace rooted at the unseen shim.
    const span = (p: Process): SpanRec => received.spans.find((s) => s.spanId === spanIdOf(p.exec_id))!;
    const [parentSpan, childSpan, shimSpan] = [span(parent), span(child), span(shim)];
    assert.equal(childSpan.parentSpanId, parentSpan.spanId);
    assert.equal(childSpan.traceId, parentSpan.traceId);
    assert.equal(parentSpan.parentSpanId, spanIdOf(shim.exec_id));
    assert.equal(parentSpan.traceId, traceIdOf(shim.exec_id));
    assert.equal(shimSpan.parentSpanId, '', 'a process whose exec was not seen roots its trace');
    assert.equal(shimSpan.traceId, traceIdOf(shim.exec_id));
    assert.equal(childSpan.name, 'nginx');
    assert.equal(childSpan.start, BigInt(child.start_time.seconds) * 1_000_000_000n);
    assert.ok(childSpan.end > childSpan.start);
    assert.equal(childSpan.attributes['vigil.exit_signal'], 'SIGKILL');
    assert.equal(childSpan.attributes['process.exit.code'], 0);
    assert.equal(childSpan.status, 2, 'killed: status ERROR');
    assert.equal(parentSpan.attributes['process.exit.code'], 1);
    assert.equal(parentSpan.status, 0);
    assert.equal(childSpan.resource['service.name'], 'vigil-e2e');

    // Metrics: the same families as Prometheus.
    const events = received.metrics.get('vigil_events')!;
    assert.ok(events.every((p) => p.kind === 'sum' && p.monotonic));
    assert.deepEqual(events.find((p) => p.attributes.type === 'process_exec')?.attributes, { type: 'process_exec', namespace: 'shop', pod: pod.name });
    assert.deepEqual(received.metrics.get('vigil_policy_events')?.map((p) => [p.attributes.action, p.value]).sort(), [['KPROBE_ACTION_POST', 1], ['KPROBE_ACTION_SIGKILL', 2]]);
    assert.deepEqual(received.metrics.get('vigil_build_info')?.map((p) => [p.kind, p.attributes.version, p.value]), [['gauge', '9.9.9-test', 1]]);
    assert.deepEqual(exporters.stats().otel, { openSpans: 0, evictedSpans: 0 });
  } finally {
    await exporters.close();
    await receiver.close();
  }
});

test('over http/protobuf: the same signals reach a plain HTTP receiver', async () => {
  const received = new Received();
  const receiver = await httpReceiver(received);
  const bus = new LocalBus();
  const exporters = await startOtel(bus, { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.port}`, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' });
  try {
    const p = makeProcess({ pid: 300, binary: '/bin/true' });
    bus.publishEvent(execEvent(p));
    bus.publishEvent(exitEvent(p));
    await until('2 log records, a span and metrics', () => (received.logs.length >= 2 && received.spans.length >= 1 && received.metrics.has('vigil_events') ? true : undefined));
    assert.deepEqual(received.logs.map((l) => l.eventName), ['vigil.process_exec', 'vigil.process_exit']);
    assert.equal(received.logs[0]!.resource['service.name'], 'vigil');
    assert.equal(received.spans[0]!.spanId, spanIdOf(p.exec_id));
    assert.equal(received.spans[0]!.parentSpanId, '');
  } finally {
    await exporters.close();
    await receiver.close();
  }
});

test('console and none, from the environment alone: nothing goes over OTLP', async (t) => {
  const received = new Received();
  const receiver = await httpReceiver(received);
  const printed: Json[] = [];
  t.mock.method(console, 'dir', (item: Json) => { printed.push(item); });
  const p = makeProcess({ pid: 400, binary: '/bin/true' });
  const runs = [
    { env: { OTEL_LOGS_EXPORTER: 'console', OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none' }, printed: [['vigil.process_exec'], ['vigil.process_exit']] },
    { env: { OTEL_LOGS_EXPORTER: 'none', OTEL_TRACES_EXPORTER: 'console', OTEL_METRICS_EXPORTER: 'none' }, printed: [['true', spanIdOf(p.exec_id)]] },
  ];
  try {
    for (const run of runs) {
      printed.length = 0;
      const bus = new LocalBus();
      const exporters = await startOtel(bus, { ...run.env, OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.port}` });
      try {
        bus.publishEvent(execEvent(p));
        bus.publishEvent(exitEvent(p));
        await until(`${run.env.OTEL_LOGS_EXPORTER} logs, ${run.env.OTEL_TRACES_EXPORTER} traces on the console`, () => (printed.length >= run.printed.length ? true : undefined));
        // Log records carry an event name, spans a name and an id.
        assert.deepEqual(printed.map((item) => ('eventName' in item ? [item.eventName] : [item.name, item.id])), run.printed);
        await new Promise((r) => setTimeout(r, 500));
      } finally {
        await exporters.close();
      }
    }
    assert.deepEqual([received.logs.length, received.spans.length, received.metrics.size], [0, 0, 0]);
  } finally {
    for (const name of Object.keys(runs[0]!.env)) delete process.env[name];
    await receiver.close();
  }
});

test('an unknown exporter name or OTLP protocol stops the start, naming the variable and the value', async () => {
  const cases: [string, string, RegExp][] = [
    ['OTEL_LOGS_EXPORTER', 'bogus', /^Error: OTEL_LOGS_EXPORTER=bogus: unknown exporter "bogus", expected otlp, console, none$/],
    ['OTEL_METRICS_EXPORTER', 'otlp,bogus', /^Error: OTEL_METRICS_EXPORTER=otlp,bogus: unknown exporter "bogus", expected otlp, prometheus, console, none$/],
    ['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', 'http/xml', /^Error: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http\/xml: unknown OTLP protocol, expected grpc, http\/protobuf, http\/json$/],
  ];
  for (const [name, value, message] of cases) {
    process.env[name] = value;
    try {
      await assert.rejects(startOtel(new LocalBus(), {}), (err: Error) => message.test(String(err)));
    } finally {
      delete process.env[name];
    }
  }
});
