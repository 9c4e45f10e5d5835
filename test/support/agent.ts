/** Starts `vigil agent` as a child process on a free port (logs on stderr), for benchmarks and end-to-end tests. */
import { spawn, type ChildProcess } from 'node:child_process';
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
}

export async function startAgent(extraArgs: string[] = [], stdout: 'ignore' | 'pipe' = 'ignore', opts: AgentOptions = {}): Promise<AgentProcess> {
  const insecure = (opts.insecurePolicyChanges ?? true) ? ['--server-insecure-policy-changes'] : [];
  const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'vigil.js'), 'agent', '--server-address', 'localhost:0', '--server-unix-socket', '', '--metrics-address', '127.0.0.1:0', ...insecure, ...extraArgs], {
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
