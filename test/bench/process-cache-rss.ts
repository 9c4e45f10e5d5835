/**
 * The agent's resident memory with many live processes in its process cache:
 * `vigil agent` as the README runs it (JSON to stdout, here /dev/null), idle,
 * then with `hold-procs N` holding N forked processes alive until the cache
 * (its process_cache_size metric) holds them all. The kernel's pid_max is
 * raised for the run when it is below what N needs, and put back after.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { benchBinaryPath } from '../../services/lib/paths.js';
import { startAgent, vmRssKiB } from '../support/agent.js';
import { waitFor } from '../support/wait.js';

export interface ProcessCacheRss { processes: number; cached: number; idleMiB: number; heldMiB: number }

const PID_MAX = '/proc/sys/kernel/pid_max';

async function cacheSize(metricsPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  return Number(/^vigil_process_cache_size\{[^}]*\} (\d+)/m.exec(text)?.[1] ?? 0);
}

export async function measureProcessCacheRss(processes: number): Promise<ProcessCacheRss> {
  const pidMax = Number(fs.readFileSync(PID_MAX, 'utf8'));
  const needed = processes + 32_768;
  if (pidMax < needed) fs.writeFileSync(PID_MAX, String(needed));
  const agent = await startAgent();
  const pid = agent.child.pid!;
  await new Promise((r) => setTimeout(r, 2000));
  const idleMiB = vmRssKiB(pid) / 1024;
  const before = await cacheSize(agent.metricsPort!);
  const holder = spawn(benchBinaryPath('hold-procs'), [String(processes)], { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      holder.stdout.on('data', (d: Buffer) => { if (d.toString().includes('ready')) resolve(); });
      holder.once('exit', (code) => reject(new Error(`hold-procs exited (${code}) before holding ${processes} processes`)));
    });
    const cached = await waitFor(`${processes} processes in the agent's cache`, async () => {
      const n = await cacheSize(agent.metricsPort!);
      return n - before >= processes ? n - before : undefined;
    }, 120_000);
    await new Promise((r) => setTimeout(r, 2000)); // what the burst left to collect
    return { processes, cached, idleMiB, heldMiB: vmRssKiB(pid) / 1024 };
  } finally {
    holder.stdin.end();
    await new Promise((r) => (holder.exitCode !== null ? r(undefined) : holder.once('exit', r)));
    await agent.stop();
    if (pidMax < needed) fs.writeFileSync(PID_MAX, String(pidMax));
  }
}
