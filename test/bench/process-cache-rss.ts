/**
 * The agent's resident memory with many live processes in its process cache:
 * `vigil agent` as the README runs it (JSON to stdout, here /dev/null), idle,
 * then with `hold-procs N` holding N forked processes alive until the cache
 * (its process_cache_size metric) holds them all. The held figure is taken
 * 30 s after that, once V8's memory reducer has given back the heap the fork
 * burst grew (it runs some 8 to 16 s after allocation slows: at 10 s the same
 * cache read anywhere from 61 to 128 MiB of RssAnon); the peak over the whole
 * run is reported beside it. The kernel's pid_max is raised for the run when
 * it is below what N needs, and put back after.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { benchBinaryPath } from '../../services/lib/paths.js';
import { startAgent } from '../support/agent.js';

export interface ProcessCacheRss {
  processes: number;
  /** Processes the cache gained (all of them, unless records were lost: ringLost). */
  cached: number;
  ringLost: number;
  /** VmRSS, and RssAnon: the agent's own memory, without its executable's pages and the kernel's ring buffer it maps. */
  idleMiB: number;
  heldMiB: number;
  /** The highest VmRSS sampled (every 250 ms) from the fork burst to the held figure. */
  peakMiB: number;
  idleAnonMiB: number;
  heldAnonMiB: number;
}

const statusMiB = (pid: number, field: string): number =>
  Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

const PID_MAX = '/proc/sys/kernel/pid_max';

async function metrics(metricsPort: number): Promise<{ cacheSize: number; ringLost: number }> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const value = (re: RegExp): number => Number(re.exec(text)?.[1] ?? 0);
  return { cacheSize: value(/^vigil_process_cache_size\{[^}]*\} (\d+)/m), ringLost: value(/^vigil_ringbuf_lost_total\{[^}]*\} (\d+)/m) };
}

export async function measureProcessCacheRss(processes: number): Promise<ProcessCacheRss> {
  const pidMax = Number(fs.readFileSync(PID_MAX, 'utf8'));
  const needed = processes + 32_768;
  if (pidMax < needed) fs.writeFileSync(PID_MAX, String(needed));
  const agent = await startAgent();
  const pid = agent.child.pid!;
  await new Promise((r) => setTimeout(r, 2000));
  const idleMiB = statusMiB(pid, 'VmRSS');
  const idleAnonMiB = statusMiB(pid, 'RssAnon');
  const before = (await metrics(agent.metricsPort!)).cacheSize;
  let peakMiB = idleMiB;
  const sampler = setInterval(() => { peakMiB = Math.max(peakMiB, statusMiB(pid, 'VmRSS')); }, 250);
  const holder = spawn(benchBinaryPath('hold-procs'), [String(processes)], { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      holder.stdout.on('data', (d: Buffer) => { if (d.toString().includes('ready')) resolve(); });
      holder.once('exit', (code) => reject(new Error(`hold-procs exited (${code}) before holding ${processes} processes`)));
    });
    // Until the cache holds them all, or has not grown for 5 s (records lost: reported).
    let last = { cacheSize: -1, ringLost: 0 };
    let still = 0;
    for (let waited = 0; waited < 120_000 && still < 5 && last.cacheSize - before < processes; waited += 1000) {
      await new Promise((r) => setTimeout(r, 1000));
      const now = await metrics(agent.metricsPort!);
      still = now.cacheSize === last.cacheSize ? still + 1 : 0;
      last = now;
    }
    await new Promise((r) => setTimeout(r, 30_000)); // the burst's heap given back
    const heldMiB = statusMiB(pid, 'VmRSS');
    return {
      processes, cached: last.cacheSize - before, ringLost: last.ringLost,
      idleMiB, heldMiB, peakMiB: Math.max(peakMiB, heldMiB), idleAnonMiB, heldAnonMiB: statusMiB(pid, 'RssAnon'),
    };
  } finally {
    clearInterval(sampler);
    holder.stdin.end();
    await new Promise((r) => (holder.exitCode !== null ? r(undefined) : holder.once('exit', r)));
    await agent.stop();
    if (pidMax < needed) fs.writeFileSync(PID_MAX, String(pidMax));
  }
}
