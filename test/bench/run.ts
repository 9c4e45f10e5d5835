/**
 * `npm run bench`: each measurement side by side with its reference, in the
 * same run, reported as a ratio (never as a pass/fail). Prints a table and,
 * with --json, the raw numbers.
 */
import { execFileSync } from 'node:child_process';
import { benchBinaryPath } from '../../services/lib/paths.js';
import { measureExecOverhead } from './exec-overhead.js';
import { measureAddonThroughput, measureReferenceThroughput } from './ring-throughput.js';
import { measurePipeline } from './pipeline.js';

interface Row { measure: string; vigil: string; reference: string; ratio: number; target: string }

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (n: number, digits = 2): string => n.toFixed(digits);

async function ringRow(n: number, rounds: number): Promise<Row> {
  const addon: number[] = [];
  const reference: number[] = [];
  for (let i = 0; i < rounds; i++) {
    reference.push((await measureReferenceThroughput(n)).recordsPerSecond);
    addon.push((await measureAddonThroughput(n)).recordsPerSecond);
  }
  return {
    measure: `ring → consumer, ${n.toLocaleString('en')} records (records/s, median of ${rounds})`,
    vigil: `${fmt(median(addon) / 1e6)} M/s (addon → JS)`, reference: `${fmt(median(reference) / 1e6)} M/s (C libbpf)`,
    ratio: median(addon) / median(reference), target: '≥ 0.9',
  };
}

async function execRow(spawns: number, rounds: number): Promise<Row> {
  const r = await measureExecOverhead(spawns, rounds);
  return {
    measure: `${spawns.toLocaleString('en')} posix_spawn of /bin/true (s, median of ${rounds}; events to the subscriber: ${r.eventsReceived} ≥ ${r.eventsExpected})`,
    vigil: `${fmt(median(r.agentSeconds), 3)} s (vigil agent + gRPC subscriber)`, reference: `${fmt(median(r.baselineSeconds), 3)} s (no sensor)`,
    ratio: r.ratio, target: '≤ 1.05',
  };
}

function hookCostRow(): Row {
  const out = JSON.parse(execFileSync(benchBinaryPath('hook-cost'), { encoding: 'utf8' })) as { bareNs: number; referenceNs: number; vigilNs: number };
  const added = out.vigilNs - out.bareNs;
  const referenceAdded = out.referenceNs - out.bareNs;
  return {
    measure: `getpid hooked, selectors reject in the kernel (added ns/call over bare ${fmt(out.bareNs, 0)} ns)`,
    vigil: `+${fmt(added, 1)} ns (vigil hook)`, reference: `+${fmt(referenceAdded, 1)} ns (tp program returning at once)`,
    ratio: added / referenceAdded, target: '≤ 1.2',
  };
}

function printTable(header: string[], lines: string[][]): void {
  const all = [header, ...lines];
  const widths = header.map((_, i) => Math.max(...all.map((l) => l[i]!.length)));
  for (const [i, line] of all.entries()) {
    console.log(`| ${line.map((cell, j) => cell.padEnd(widths[j]!)).join(' | ')} |`);
    if (i === 0) console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  }
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const rows: Row[] = [];
  if (!process.argv.includes('--pipeline-only')) {
    rows.push(await ringRow(quick ? 200_000 : 2_000_000, 3));
    rows.push(await execRow(quick ? 1000 : 5000, 3));
    rows.push(hookCostRow());
    printTable(['measure', 'vigil', 'reference', 'ratio', 'target'], rows.map((r) => [r.measure, r.vigil, r.reference, fmt(r.ratio, 3), r.target]));
    console.log('');
  }
  // 50,000 policy events of ~1 KB fit the sensor's 64 MiB NATS buffer: the split run is lossless.
  const pipeline = await measurePipeline(50_000);
  // Flat out, the kernel produces far faster than one subscriber reads: the agent's gRPC
  // subscriber queue (10,000) drops the excess, counted; the split shape's JetStream does not.
  printTable(['end to end', 'latency p50 @10k/s', 'latency p99 @10k/s', 'flat-out burst: events/s delivered', 'delivered'],
    pipeline.map((p) => [p.shape, `${fmt(p.p50Ms, 1)} ms`, `${fmt(p.p99Ms, 1)} ms`, `${Math.round(p.eventsPerSecond).toLocaleString('en')}`, `${p.delivered}/${p.expected}`]));
  if (process.argv.includes('--json')) console.log(JSON.stringify({ rows, pipeline }));
}

await main();
