/**
 * The monitoring bundle in deploy/, checked with the real tools: the Prometheus
 * rules with `promtool check rules` and their unit tests with `promtool test
 * rules`; every PromQL expression of the Grafana dashboard sent to a real
 * Prometheus (no scrape targets, a temporary database backfilled with
 * Vigil-shaped series) that must accept it, and answer it with data.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { repoRoot } from '../../services/lib/paths.js';
import { exited } from '../support/wait.js';

const PROMTOOL = process.env.PROMTOOL ?? '/usr/bin/promtool';
const PROMETHEUS = process.env.PROMETHEUS ?? '/usr/bin/prometheus';
const rulesDir = path.join(repoRoot, 'deploy', 'prometheus');
const RULES = path.join(rulesDir, 'vigil-rules.yaml');
const RULES_TEST = path.join(rulesDir, 'vigil-rules.test.yaml');
const DASHBOARD = path.join(repoRoot, 'deploy', 'grafana', 'vigil-dashboard.json');

/** The two queries of the Tetragon monitoring setup Vigil started from (SEED.md §5). */
const SEED_HEALTH = '(sum(tetragon_events_total) - sum(tetragon_errors_total)) / sum(tetragon_events_total)';
const SEED_ERRORS = 'sum by (type) (tetragon_errors_total)';

/** Runs a tool to completion, stdout and stderr interleaved. */
function tool(cmd: string, args: string[], cwd = repoRoot): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

// ------------------------------------------------------------------------ rules

interface Rule { alert?: string; record?: string; expr: string; labels?: Record<string, string>; annotations?: Record<string, string> }
interface RulesFile { groups: { name: string; rules: Rule[] }[] }
interface RulesTestFile {
  rule_files: string[];
  tests: {
    name?: string;
    alert_rule_test?: { alertname: string; eval_time: string; exp_alerts?: unknown[] }[];
    promql_expr_test?: { expr: string; eval_time: string; exp_samples?: unknown[] }[];
  }[];
}

describe('Prometheus rules (deploy/prometheus)', () => {
  const rules = parseYaml(fs.readFileSync(RULES, 'utf8')) as RulesFile;
  const vigil = rules.groups.find((g) => g.name === 'vigil');

  it('pass promtool check rules', async () => {
    const { code, output } = await tool(PROMTOOL, ['check', 'rules', RULES]);
    assert.equal(code, 0, `promtool check rules exited ${code}:\n${output}`);
    assert.match(output, /SUCCESS/, output);
  });

  it('pass their unit tests (promtool test rules)', async () => {
    const { code, output } = await tool(PROMTOOL, ['test', 'rules', RULES_TEST], rulesDir);
    assert.equal(code, 0, `promtool test rules exited ${code}:\n${output}`);
    assert.match(output, /SUCCESS/, output);
  });

  it('hold the four alerts, labelled and annotated, and record the seed queries as they are', () => {
    assert.ok(vigil, 'a rule group named vigil');
    const alerts = vigil.rules.filter((r) => r.alert !== undefined);
    assert.deepEqual(alerts.map((r) => r.alert).sort(),
      ['VigilErrorRatioHigh', 'VigilEventsLost', 'VigilPolicyKilledProcess', 'VigilSensorDown']);
    for (const a of alerts) {
      assert.match(a.labels?.severity ?? '', /^(critical|warning)$/, `${a.alert} severity`);
      assert.ok(a.annotations?.summary, `${a.alert} has a summary`);
      assert.match(a.annotations?.description ?? '', /\{\{/, `${a.alert} has a templated description`);
    }
    assert.equal(alerts.find((r) => r.alert === 'VigilPolicyKilledProcess')?.labels?.severity, 'critical');
    const recorded = new Map(vigil.rules.filter((r) => r.record !== undefined).map((r) => [r.expr.trim(), r.record]));
    assert.ok(recorded.has(SEED_HEALTH), `health ratio recorded as ${SEED_HEALTH}`);
    assert.ok(recorded.has(SEED_ERRORS), `errors by cause recorded as ${SEED_ERRORS}`);
  });

  it('have unit tests of every alert firing and not firing, and of every recording rule', () => {
    assert.ok(vigil);
    const unit = parseYaml(fs.readFileSync(RULES_TEST, 'utf8')) as RulesTestFile;
    assert.deepEqual(unit.rule_files, ['vigil-rules.yaml']);
    const alertTests = unit.tests.flatMap((t) => t.alert_rule_test ?? []);
    const exprTests = unit.tests.flatMap((t) => t.promql_expr_test ?? []);
    for (const r of vigil.rules) {
      if (r.alert !== undefined) {
        const mine = alertTests.filter((t) => t.alertname === r.alert);
        assert.ok(mine.some((t) => (t.exp_alerts ?? []).length > 0), `${r.alert} is tested firing`);
        assert.ok(mine.some((t) => (t.exp_alerts ?? []).length === 0), `${r.alert} is tested not firing`);
      } else {
        const name = r.record ?? '';
        assert.ok(exprTests.some((t) => t.expr.includes(name) && (t.exp_samples ?? []).length > 0), `${name} is tested for its values`);
      }
    }
  });
});

// -------------------------------------------------------------------- dashboard

interface Target { refId?: string; expr?: string; legendFormat?: string; datasource?: { type?: string; uid?: string } }
interface Panel { id?: number; type?: string; title?: string; datasource?: { type?: string; uid?: string }; targets?: Target[]; panels?: Panel[] }
interface Dashboard {
  schemaVersion: number;
  uid: string;
  title: string;
  __inputs?: { name: string; type: string; pluginId: string }[];
  templating?: { list: { name: string; type: string; query?: string }[] };
  panels: Panel[];
}

const dashboard = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8')) as Dashboard;

/** Every panel, those folded in rows included. */
function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}
const panels = allPanels(dashboard.panels);
const queries = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title ?? `panel ${p.id}`, refId: t.refId ?? '?', expr: t.expr ?? '' })));

/** A Grafana expression as Prometheus gets it, the interval variables at 5m. */
function concrete(expr: string): string {
  return expr.replace(/\$\{?__(rate_interval|interval|range)\}?/g, '5m');
}

const byExpr = (expr: string): Panel[] => panels.filter((p) => (p.targets ?? []).some((t) => t.expr === expr));
const exprsOf = (p: Panel): string[] => (p.targets ?? []).map((t) => t.expr ?? '');

describe('Grafana dashboard (deploy/grafana)', () => {
  it('is a schema 39 dashboard on a DS_PROMETHEUS data source', () => {
    assert.ok(dashboard.schemaVersion >= 38 && dashboard.schemaVersion <= 41, `schemaVersion ${dashboard.schemaVersion}`);
    assert.ok(dashboard.uid && dashboard.title);
    assert.ok(dashboard.__inputs?.some((i) => i.name === 'DS_PROMETHEUS' && i.type === 'datasource' && i.pluginId === 'prometheus'), 'import input DS_PROMETHEUS');
    assert.ok(dashboard.templating?.list.some((v) => v.name === 'DS_PROMETHEUS' && v.type === 'datasource' && v.query === 'prometheus'), 'datasource variable DS_PROMETHEUS');
    const ids = panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, `panel ids are unique: ${ids.join(', ')}`);
    for (const p of panels.filter((q) => q.type !== 'row')) {
      assert.equal(p.datasource?.uid, '${DS_PROMETHEUS}', `${p.title} uses the DS_PROMETHEUS data source`);
      assert.ok((p.targets ?? []).length > 0, `${p.title} has queries`);
      for (const t of p.targets ?? []) {
        assert.ok(t.expr, `${p.title} ${t.refId} has an expression`);
        assert.equal(t.datasource?.uid ?? '${DS_PROMETHEUS}', '${DS_PROMETHEUS}', `${p.title} ${t.refId} data source`);
      }
    }
  });

  it('has the seed panels with exactly the seed queries', () => {
    const health = byExpr(SEED_HEALTH);
    assert.equal(health.length, 1, `one panel queries ${SEED_HEALTH}`);
    assert.match(health[0]!.title ?? '', /health ratio/i);
    assert.deepEqual(exprsOf(health[0]!), [SEED_HEALTH]);
    const errors = byExpr(SEED_ERRORS);
    assert.equal(errors.length, 1, `one panel queries ${SEED_ERRORS}`);
    assert.match(errors[0]!.title ?? '', /errors by cause/i);
    assert.deepEqual(exprsOf(errors[0]!), [SEED_ERRORS]);
  });

  it('has panels of events by type, loss, latency p50/p99 and policy actions', () => {
    const has = (what: string, test: (exprs: string[]) => boolean): void => {
      assert.ok(panels.some((p) => test(exprsOf(p))), `a panel of ${what}`);
    };
    has('events by type', (e) => e.some((x) => /sum by \(type\) \(rate\(tetragon_events_total\[/.test(x)));
    has('loss', (e) => e.some((x) => ['ring_lost', 'ring_dropped', 'subscriber_dropped', 'publish_dropped'].every((k) => x.includes(k))));
    has('latency p50 and p99', (e) =>
      e.some((x) => x.startsWith('histogram_quantile(0.5,') && x.includes('tetragon_event_latency_seconds_bucket')) &&
      e.some((x) => x.startsWith('histogram_quantile(0.99,') && x.includes('tetragon_event_latency_seconds_bucket')));
    has('policy actions', (e) => e.some((x) => x.includes('tetragon_policy_events_total') && x.includes('action')));
  });

  describe('its queries on a real Prometheus', () => {
    let prom: { child: ChildProcess; port: number; logs: () => string } | undefined;
    let dir = '';
    let at = 0; // evaluation time (unix seconds): the last backfilled sample

    before(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-prometheus-'));
      const config = path.join(dir, 'prometheus.yml');
      fs.writeFileSync(config, '# Nothing to scrape: the data is backfilled.\nscrape_configs: []\n');
      const storage = path.join(dir, 'data');
      at = Math.floor(Date.now() / 60_000) * 60 - 60;
      const om = path.join(dir, 'vigil.om');
      fs.writeFileSync(om, vigilSeries(at - 30 * 60, at, 15));
      const backfill = await tool(PROMTOOL, ['tsdb', 'create-blocks-from', 'openmetrics', om, storage]);
      assert.equal(backfill.code, 0, `promtool tsdb create-blocks-from openmetrics exited ${backfill.code}:\n${backfill.output}`);
      prom = await startPrometheus(config, storage);
    });

    after(async () => {
      if (prom) {
        prom.child.kill('SIGTERM');
        const timer = setTimeout(() => prom?.child.kill('SIGKILL'), 10_000);
        await exited(prom.child);
        clearTimeout(timer);
      }
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it('are accepted (no parse or evaluation error)', async (t) => {
      assert.ok(queries.length >= 8, `${queries.length} queries`);
      for (const q of queries) {
        await t.test(`${q.panel} ${q.refId}: ${q.expr}`, async () => {
          const expr = concrete(q.expr);
          assert.doesNotMatch(expr, /\$/, 'no dashboard variable left unreplaced');
          const { http, body } = await query(expr, at);
          assert.equal(body.status, 'success', `HTTP ${http}, ${body.errorType ?? ''}: ${body.error ?? ''}\n(query ${expr})`);
        });
      }
    });

    it('answer with finite values on Vigil-shaped series (metric and label names exist)', async (t) => {
      for (const q of queries) {
        await t.test(`${q.panel} ${q.refId}`, async () => {
          const expr = concrete(q.expr);
          const { body } = await query(expr, at);
          assert.equal(body.status, 'success', body.error);
          const result = body.data?.result ?? [];
          assert.ok(result.length > 0, `no data for ${expr}`);
          for (const r of result) {
            const v = Number(r.value[1]);
            assert.ok(Number.isFinite(v), `${expr}: ${JSON.stringify(r.metric)} = ${r.value[1]}`);
          }
        });
      }
    });

    it('give the seed queries the values of the backfilled counters', async () => {
      // Over the backfill: 12 events/s of three types on two sensors, errors as
      // listed in vigilSeries(); values at the last sample.
      const secs = 30 * 60;
      const events = 2 * (6 + 4 + 2) * secs;
      const errors = 2 * (0.5 + 0.25 + 0.1 + 0.1 + 0.05) * secs;
      const health = await query(SEED_HEALTH, at);
      assert.ok(Math.abs(Number(health.body.data?.result[0]?.value[1]) - (events - errors) / events) < 1e-9, JSON.stringify(health.body));
      const byType = await query(SEED_ERRORS, at);
      const got = Object.fromEntries((byType.body.data?.result ?? []).map((r) => [r.metric.type, Math.round(Number(r.value[1]))]));
      assert.deepEqual(got, { ring_lost: 2 * 0.5 * secs, undecodable: 2 * 0.25 * secs, subscriber_dropped: 2 * 0.1 * secs, publish_dropped: 2 * 0.1 * secs, process_cache_miss: 2 * 0.05 * secs });
    });

    interface QueryBody {
      status: 'success' | 'error';
      errorType?: string;
      error?: string;
      data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
    }
    async function query(expr: string, time: number): Promise<{ http: number; body: QueryBody }> {
      assert.ok(prom, 'Prometheus is running');
      const url = `http://127.0.0.1:${prom.port}/api/v1/query?${new URLSearchParams({ query: expr, time: String(time) })}`;
      const res = await fetch(url);
      return { http: res.status, body: (await res.json()) as QueryBody };
    }
  });
});

// ------------------------------------------------------------------- Prometheus

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Starts Prometheus on a free loopback port and waits until it is ready (three tries, for a port taken meanwhile). */
async function startPrometheus(config: string, storage: string): Promise<{ child: ChildProcess; port: number; logs: () => string }> {
  let failures = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const child = spawn(PROMETHEUS, [
      `--config.file=${config}`,
      `--storage.tsdb.path=${storage}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    let logs = '';
    child.stdout!.on('data', (d: Buffer) => { logs += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { logs += d.toString(); });
    const deadline = Date.now() + 30_000;
    while (child.exitCode === null && child.signalCode === null && Date.now() < deadline) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/-/ready`);
        if (res.status === 200) return { child, port, logs: () => logs };
      } catch {
        // not listening yet
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited(child);
    }
    failures += `--- attempt ${attempt + 1} (port ${port}):\n${logs}\n`;
  }
  throw new Error(`Prometheus did not become ready:\n${failures}`);
}

/**
 * Vigil's metrics as OpenMetrics text for `promtool tsdb create-blocks-from`, one
 * sample every `step` seconds from `from` to `to`: two sensors, each with the
 * same constant rates, the metric and label names of Vigil's exporter (prefix
 * tetragon).
 */
function vigilSeries(from: number, to: number, step: number): string {
  const sensors = ['node-a:2112', 'node-b:2112'];
  const families: { family: string; type: string; series: { name: string; labels: Record<string, string>; value: (s: number) => number }[] }[] = [];
  const counter = (family: string, perSecond: { labels: Record<string, string>; rate: number }[]): void => {
    families.push({
      family,
      type: 'counter',
      series: sensors.flatMap((instance) => perSecond.map(({ labels, rate }) => ({
        name: `${family}_total`, labels: { job: 'vigil', instance, ...labels }, value: (s: number) => rate * s,
      }))),
    });
  };
  const gauge = (family: string, labels: Record<string, string>, value: number): void => {
    families.push({ family, type: 'gauge', series: sensors.map((instance) => ({ name: family, labels: { job: 'vigil', instance, ...labels }, value: () => value })) });
  };
  const workload = { namespace: 'default', pod: 'nginx-priv-6db9787dc9-d5jsx', binary: '/usr/sbin/nginx' };
  counter('tetragon_events', [
    { labels: { type: 'process_exec', ...workload }, rate: 6 },
    { labels: { type: 'process_exit', ...workload }, rate: 4 },
    { labels: { type: 'process_kprobe', ...workload }, rate: 2 },
  ]);
  counter('tetragon_errors', [
    { labels: { type: 'ring_lost' }, rate: 0.5 },
    { labels: { type: 'undecodable' }, rate: 0.25 },
    { labels: { type: 'subscriber_dropped' }, rate: 0.1 },
    { labels: { type: 'publish_dropped' }, rate: 0.1 },
    { labels: { type: 'process_cache_miss' }, rate: 0.05 },
  ]);
  counter('tetragon_policy_events', [
    { labels: { policy: 'deny-privileged-pod-start', hook: 'sys_openat', action: 'KPROBE_ACTION_SIGKILL' }, rate: 0.02 },
    { labels: { policy: 'exec-monitoring', hook: 'sched_process_exec', action: 'KPROBE_ACTION_POST' }, rate: 6 },
  ]);
  counter('tetragon_ringbuf_received', [{ labels: {}, rate: 12 }]);
  counter('tetragon_ringbuf_lost', [{ labels: {}, rate: 0.5 }]);
  counter('tetragon_subscriber_dropped', [{ labels: {}, rate: 0.1 }]);
  counter('tetragon_export', [
    { labels: { exporter: 'stdout', outcome: 'ok' }, rate: 12 },
    { labels: { exporter: 'otlp', outcome: 'error' }, rate: 0.5 },
  ]);
  gauge('tetragon_process_cache_size', {}, 512);
  gauge('tetragon_build_info', { version: '0.1.0' }, 1);
  gauge('up', {}, 1);
  // Latency: 12 events/s, cumulative shares per bucket.
  const buckets: [string, number][] = [['0.0005', 0.1], ['0.001', 0.4], ['0.005', 0.8], ['0.01', 0.95], ['0.05', 0.99], ['0.1', 1], ['+Inf', 1]];
  families.push({
    family: 'tetragon_event_latency_seconds',
    type: 'histogram',
    series: sensors.flatMap((instance) => [
      ...buckets.map(([le, share]) => ({ name: 'tetragon_event_latency_seconds_bucket', labels: { job: 'vigil', instance, le }, value: (s: number) => 12 * share * s })),
      { name: 'tetragon_event_latency_seconds_count', labels: { job: 'vigil', instance }, value: (s: number) => 12 * s },
      { name: 'tetragon_event_latency_seconds_sum', labels: { job: 'vigil', instance }, value: (s: number) => 12 * 0.002 * s },
    ]),
  });

  const lines: string[] = [];
  for (const f of families) {
    lines.push(`# TYPE ${f.family} ${f.type}`);
    for (const s of f.series) {
      const labels = Object.entries(s.labels).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',');
      for (let t = from; t <= to; t += step) lines.push(`${s.name}{${labels}} ${s.value(t - from)} ${t}`);
    }
  }
  lines.push('# EOF');
  return `${lines.join('\n')}\n`;
}
