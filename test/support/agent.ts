/** Starts `vigil agent` as a child process on a free port (logs on stderr), for benchmarks and end-to-end tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../services/lib/paths.js';

export interface AgentProcess { child: ChildProcess; port: number; metricsPort: number | undefined; stderr(): string; stop(): Promise<void> }

export interface AgentOptions {
  /**
   * Pass --server-insecure-policy-changes (default true): the tests that change
   * policies over plaintext TCP, as Tetragon allows, keep doing so;
   * authorization tests set false to get the secure default.
   */
  insecurePolicyChanges?: boolean;
  /**
   * The bpffs pin directory and the policy state directory (--bpf-pin-dir,
   * --state-dir). Without them both are disabled, so that a test's agent
   * neither pins in nor restores from the node's defaults.
   */
  persistence?: { pinDir: string; stateDir: string };
}

export async function startAgent(extraArgs: string[] = [], stdout: 'ignore' | 'pipe' = 'ignore', opts: AgentOptions = {}): Promise<AgentProcess> {
  const insecure = (opts.insecurePolicyChanges ?? true) ? ['--server-insecure-policy-changes'] : [];
  const persistence = ['--bpf-pin-dir', opts.persistence?.pinDir ?? '', '--state-dir', opts.persistence?.stateDir ?? ''];
  const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'vigil.js'), 'agent', '--server-address', 'localhost:0', '--server-unix-socket', '', '--metrics-address', '127.0.0.1:0', ...insecure, ...persistence, ...extraArgs], {
    stdio: ['ignore', stdout, 'pipe'],
  });
  let stderr = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const m = /gRPC API on port (\d+)/.exec(stderr);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`agent exited (${code}) before it was ready: ${stderr}`)));
  });
  return {
    child, port, stderr: () => stderr,
    metricsPort: Number(/metrics on port (\d+)/.exec(stderr)?.[1]) || undefined,
    stop: () => new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    }),
  };
}

/** CPU seconds (user + system) a process has used, from /proc/PID/stat; 0 when it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after the command.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** A process's resident set size in KiB (VmRSS of /proc/PID/status); 0 once it is gone. */
export function vmRssKiB(pid: number): number {
  try {
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}
