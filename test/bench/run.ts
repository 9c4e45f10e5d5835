/**
 * `npm run bench`: each measurement side by side with its reference, in the
 * same run, reported as a ratio (never as a pass/fail). Prints a table and,
 * with --json, the raw numbers.
 *
 * Flags: --quick (smaller counts); --json; --pipeline-only (only the end to end
 * and memory tables); --hooks-only (only the hook-cost rows: no ring, exec or
 * pipeline part, for iterating on hooks).
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { benchBinaryPath, repoRoot } from '../../services/lib/paths.js';
import { measureExecOverhead } from './exec-overhead.js';
import { measureAddonThroughput, measureReferenceThroughput } from './ring-throughput.js';
import { measurePipeline } from './pipeline.js';
import { SELECTORS, measureTranslatedHookCost, type SelectorName } from './translated-hook.js';
import { median } from './stats.js';
import { measureNetworkHookCost } from './network-hooks.js';
import { measureProcessCacheRss } from './process-cache-rss.js';

/** The seed's policy, shipped with the deployment. */
const SEED_POLICY = path.join(repoRoot, 'deploy', 'policies', 'deny-privileged-pod-start.yaml');

interface Row { measure: string; vigil: string; reference: string; ratio: number; target: string }

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

/** Two rows against the same no-sensor baseline: the agent with no policy, and with the seed's policy loaded. */
async function execRows(spawns: number, rounds: number): Promise<Row[]> {
  const r = await measureExecOverhead(spawns, rounds, [{}, { policyFile: SEED_POLICY }]);
  return r.variants.map((v) => ({
    measure: `${spawns.toLocaleString('en')} posix_spawn of /bin/true${v.policyFile ? `, ${path.basename(v.policyFile)} loaded` : ''}, the agent's second run (s, median of ${rounds}; ratio: median of each round's run over the mean of the baselines just before and after it; `
      + `its first run, just after the agent started: ${fmt(median(v.coldSeconds), 3)} s, ×${fmt(v.coldRatio, 3)}; events to the subscriber: ${v.eventsReceived} ≥ ${v.eventsExpected})`,
    vigil: `${fmt(median(v.agentSeconds), 3)} s (vigil agent${v.policyFile ? ' + policy' : ''} + gRPC subscriber)`, reference: `${fmt(median(r.baselineSeconds), 3)} s (no sensor, median of ${r.baselineSeconds.length})`,
    ratio: v.ratio, target: '≤ 1.05',
  }));
}

/** getpid hooked (selectors rejecting), and getpid not hooked while another syscall is: what every other syscall pays. */
function hookCostRows(): Row[] {
  const out = JSON.parse(execFileSync(benchBinaryPath('hook-cost'), { encoding: 'utf8' })) as
    { bareNs: number; referenceNs: number; vigilNs: number; elsewhereReferenceNs: number; elsewhereVigilNs: number; elsewhereRawVigilNs: number };
  const added = (ns: number): number => ns - out.bareNs;
  const elsewhere = (measure: string, vigil: string, ns: number): Row => ({
    measure, vigil: `+${fmt(added(ns), 1)} ns (${vigil})`,
    reference: `+${fmt(added(out.elsewhereReferenceNs), 1)} ns (tp program on sys_enter_dup: the traced syscall path)`,
    ratio: added(ns) / added(out.elsewhereReferenceNs), target: 'reported',
  });
  return [{
    measure: `getpid hooked (a syscall routed through the raw sys_enter program), selectors reject in the kernel (added ns/call over bare ${fmt(out.bareNs, 0)} ns)`,
    vigil: `+${fmt(added(out.vigilNs), 1)} ns (vigil hook)`, reference: `+${fmt(added(out.referenceNs), 1)} ns (tp program returning at once)`,
    ratio: added(out.vigilNs) / added(out.referenceNs), target: '≤ 1.2',
  },
  elsewhere('getpid not hooked while dup is: what every syscall pays once one served at its own tracepoint is hooked (added ns/call over bare)',
    'vigil_sys_enter_one on sys_enter_dup', out.elsewhereVigilNs),
  elsewhere('getpid not hooked while read is: what every syscall pays once a raw-routed one is hooked (added ns/call over bare)',
    'vigil\'s raw sys_enter program, routing read only', out.elsewhereRawVigilNs)];
}

/** What the figures of measureTranslatedHookCost do not show: rounds set aside for another process's programs on the dup tracepoints. */
const foreign = (r: { roundsRun: number; cleanRounds: number }): string => {
  if (r.cleanRounds === r.roundsRun) return '';
  if (r.cleanRounds === 0) return '; another process had programs on the dup tracepoints in every round';
  return `; ${r.roundsRun - r.cleanRounds} of ${r.roundsRun} rounds set aside: another process's programs on the dup tracepoints`;
};

/** One row per rejecting selector of translated-hook.ts, all against the same bare and reference runs. */
async function translatedHookRows(iterations: number, rounds: number): Promise<Row[]> {
  const r = await measureTranslatedHookCost(iterations, rounds);
  return (Object.keys(SELECTORS) as SelectorName[]).map((selector) => ({
    measure: `dup+close, fd_install hooked (on dup's own sys_exit_dup), ${selector} rejects in the kernel (added ns/iteration over bare ${fmt(median(r.bareNs), 0)} ns, best 10,000-iteration chunk, median of ${r.cleanRounds || r.roundsRun} rounds${foreign(r)}; policy events: ${r.policyEvents})`,
    vigil: `+${fmt(r.vigilAddedNs[selector], 1)} ns (vigil hook)`, reference: `+${fmt(r.referenceAddedNs, 1)} ns (tp program on sys_exit_dup returning at once)`,
    ratio: r.vigilAddedNs[selector] / r.referenceAddedNs, target: '≤ 1.2',
  }));
}

/** The network rows: the Override programs on a connect loop, the TCP hooks on a request/response loop. */
async function networkRows(connections: number, rounds: number): Promise<Row[]> {
  const r = await measureNetworkHookCost(connections, rounds);
  const what = {
    override: 'connect+accept+close over loopback, Override on security_socket_connect loaded (cgroup connect4/6 on the cgroup2 root, sys_enter/exit_connect), its selector rejecting',
    state: 'connect, 1-byte request and response, close over loopback; tcp_connect, tcp_sendmsg, tcp_close hooked (connect exit, sock_send_length, inet_sock_set_state), selectors rejecting',
  } as const;
  return (['override', 'state'] as const).map((name) => ({
    measure: `${what[name]} (ns/connection, best 1,000-connection chunk of ${connections.toLocaleString('en')}, median of ${r[name].rounds}; policy events: ${r[name].policyEvents})`,
    vigil: `${fmt(r[name].vigilNs, 0)} ns (vigil)`, reference: `${fmt(r[name].bareNs, 0)} ns (no program)`,
    ratio: r[name].vigilNs / r[name].bareNs, target: name === 'override' ? '≤ 1.1' : 'reported',
  }));
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
  const hooksOnly = process.argv.includes('--hooks-only');
  if (!process.argv.includes('--pipeline-only')) {
    if (!hooksOnly) {
      rows.push(await ringRow(quick ? 200_000 : 2_000_000, 3));
      rows.push(...await execRows(quick ? 1000 : 5000, quick ? 3 : 5));
    }
    rows.push(...hookCostRows());
    rows.push(...await translatedHookRows(quick ? 500_000 : 1_000_000, quick ? 5 : 7));
    rows.push(...await networkRows(quick ? 5_000 : 20_000, quick ? 3 : 7));
    printTable(['measure', 'vigil', 'reference', 'ratio', 'target'], rows.map((r) => [r.measure, r.vigil, r.reference, fmt(r.ratio, 3), r.target]));
    console.log('');
  }
  if (hooksOnly) {
    if (process.argv.includes('--json')) console.log(JSON.stringify({ rows }));
    return;
  }
  // 50,000 policy events of ~1 KB fit the sensor's 64 MiB NATS buffer: the split run is lossless.
  const pipeline = await measurePipeline(50_000);
  // Flat out, the kernel produces faster than one subscriber reads: what the agent's gRPC
  // subscriber queue (10,000) cannot hold is dropped, counted; the split shape's JetStream holds it.
  printTable(['end to end', 'latency p50 @10k/s', 'latency p99 @10k/s', 'p50 / p99 to the exporter\'s file', 'first run p50 / p99 (cold)', 'flat-out burst: events/s delivered', 'delivered',
    'sensor CPU µs/event @10k/s / flat out'],
  pipeline.map((p) => [p.shape, `${fmt(p.p50Ms, 1)} ms`, `${fmt(p.p99Ms, 1)} ms`,
    p.sinkP50Ms === undefined ? '—' : `${fmt(p.sinkP50Ms, 1)} / ${fmt(p.sinkP99Ms!, 1)} ms`, `${fmt(p.coldP50Ms, 1)} / ${fmt(p.coldP99Ms, 1)} ms`,
    `${Math.round(p.eventsPerSecond).toLocaleString('en')}`, `${p.delivered}/${p.expected}`, `${fmt(p.steadyCpuUsPerEvent, 1)} / ${fmt(p.flatOutCpuUsPerEvent, 1)}`]));
  // Last: tearing down 50,000 processes loads the machine for a while after.
  console.log('');
  const memory = await measureProcessCacheRss(quick ? 10_000 : 50_000);
  printTable(['memory', 'vigil agent RSS (own: RssAnon), 30 s after', 'peak during the burst', 'idle', 'target'], [[
    `${memory.processes.toLocaleString('en')} live processes held (forked, no exec), ${memory.cached.toLocaleString('en')} of them in the process cache (ring records lost: ${memory.ringLost})`,
    `${fmt(memory.heldMiB, 1)} MiB (own: ${fmt(memory.heldAnonMiB, 1)})`, `${fmt(memory.peakMiB, 1)} MiB`, `${fmt(memory.idleMiB, 1)} MiB (own: ${fmt(memory.idleAnonMiB, 1)})`,
    '≤ 150 MB with 50,000',
  ]]);
  if (process.argv.includes('--json')) console.log(JSON.stringify({ rows, memory, pipeline }));
}

await main();
