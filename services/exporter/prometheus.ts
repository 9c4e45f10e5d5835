/**
 * Prometheus exporter: the telemetry families (telemetry.ts) as prom-client
 * metrics in a registry of their own, served as text on `/metrics`, with the
 * Node.js process metrics prom-client collects by default.
 *
 * Names are `<prefix>_<family>`; the default prefix is `vigil`. With prefix
 * `tetragon` the families Tetragon also has take its names, label names and
 * values (`tetragon_events_total{type="PROCESS_EXEC"}`; telemetry.ts has the
 * mapping), so dashboards and queries written for Tetragon work unchanged.
 * Values are read from the shared state at scrape time.
 *
 * A scrape is rendered on the event loop, so requests are bounded there:
 * renders run one at a time and at most one per RENDER_INTERVAL_MS, each
 * request getting a render begun after it arrived (never an older text),
 * shared with the requests that arrived with it; at most MAX_CONNECTIONS are
 * held at once, and a request must arrive whole within REQUEST_TIMEOUT_MS.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import client from 'prom-client';
import { metricShape, type Telemetry } from './telemetry.js';

/** Loopback only: metrics name the node's processes, pods and policies; give ":2112" (or HOST:PORT) to serve other hosts. */
export const DEFAULT_METRICS_ADDRESS = '127.0.0.1:2112';
export const DEFAULT_METRICS_PREFIX = 'vigil';

const RENDER_INTERVAL_MS = 100;
/** Prometheus holds one connection per target; more than this are closed as they come. */
const MAX_CONNECTIONS = 64;
const REQUEST_TIMEOUT_MS = 10_000;

/**
 * `render`, called at most once per `intervalMs` and never twice at once:
 * a call gets the next render that begins after it, shared with every call
 * made until that render begins.
 */
export function throttledRender(render: () => Promise<string>, intervalMs: number): () => Promise<string> {
  let next: Promise<string> | undefined;
  let lastStart = -Infinity;
  let running: Promise<unknown> = Promise.resolve();
  return () => {
    next ??= running.then(() => new Promise((resolve) => setTimeout(resolve, Math.max(0, lastStart + intervalMs - Date.now())))).then(() => {
      next = undefined; // calls from now on wait for a later render
      lastStart = Date.now();
      const text = render();
      running = text.catch(() => undefined);
      return text;
    });
    return next;
  };
}

export interface PrometheusOptions {
  /** host:port, ":port" for every interface; port 0 picks a free one. Default "127.0.0.1:2112" (loopback). */
  address?: string;
  /** Default "vigil". */
  prefix?: string;
}

/** Splits "host:port", "[v6]:port" or ":port"; an empty host means every interface. */
export function parseAddress(address: string): { host: string | undefined; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(address);
  const port = Number(m?.[3]);
  if (m === null || port > 65535) throw new Error(`invalid metrics address "${address}": expected HOST:PORT or :PORT`);
  const host = m[1] ?? m[2];
  return { host: host === '' ? undefined : host, port };
}

export function checkMetricPrefix(prefix: string): void {
  // Valid for Prometheus and, starting with a letter, for OTLP instrument names too.
  if (!/^[a-zA-Z][a-zA-Z0-9_]*$/.test(prefix)) throw new Error(`invalid metrics prefix "${prefix}": a letter, then letters, digits and underscores`);
}

/** The telemetry families in a registry: counters and gauges whose values are set from the state on collect. */
export function telemetryRegistry(telemetry: Telemetry, prefix: string): client.Registry {
  checkMetricPrefix(prefix);
  const registry = new client.Registry();
  for (const family of telemetry.families(metricShape(prefix))) {
    const config = { name: `${prefix}_${family.name}`, help: family.help, labelNames: family.labelNames, registers: [registry] };
    if (family.kind === 'counter') {
      new client.Counter({
        ...config,
        collect(this: client.Counter) {
          this.reset();
          for (const { labels, value } of family.samples()) this.inc(labels, value);
        },
      });
    } else {
      new client.Gauge({
        ...config,
        collect(this: client.Gauge) {
          this.reset();
          for (const { labels, value } of family.samples()) this.set(labels, value);
        },
      });
    }
  }
  client.collectDefaultMetrics({ register: registry });
  return registry;
}

export class PrometheusExporter {
  private constructor(private readonly server: http.Server, readonly registry: client.Registry, readonly port: number) {}

  /** Listens on the address; rejects when it cannot (a port in use). */
  static async start(telemetry: Telemetry, opts: PrometheusOptions = {}): Promise<PrometheusExporter> {
    const { host, port } = parseAddress(opts.address ?? DEFAULT_METRICS_ADDRESS);
    const registry = telemetryRegistry(telemetry, opts.prefix ?? DEFAULT_METRICS_PREFIX);
    const render = throttledRender(() => registry.metrics(), RENDER_INTERVAL_MS);
    const server = http.createServer({ requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: REQUEST_TIMEOUT_MS }, (req, res) => {
      if (req.method !== 'GET' || new URL(req.url ?? '/', 'http://x').pathname !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('metrics are on /metrics\n');
        return;
      }
      render().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
      );
    });
    server.maxConnections = MAX_CONNECTIONS;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => { server.off('error', reject); resolve(); });
    });
    return new PrometheusExporter(server, registry, (server.address() as AddressInfo).port);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
