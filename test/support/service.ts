/** A `vigil` service process (sensor, enforcer, exporter, agent) for end-to-end tests: started, awaited until ready, stopped. */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from '../../services/lib/paths.js';

export interface ServiceProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** The first match of `pattern` in stderr, once it appears. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  stop(): Promise<void>;
}

export async function startService(command: string, args: string[], ready: RegExp, env: NodeJS.ProcessEnv = {}): Promise<ServiceProcess> {
  const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'vigil.js'), command, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const service: ServiceProcess = {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    waitFor: (pattern, timeoutMs = 20_000) => new Promise((resolve, reject) => {
      const deadline = Date.now() + timeoutMs;
      const poll = (): void => {
        const m = pattern.exec(stderr);
        if (m) return resolve(m);
        if (child.exitCode !== null) return reject(new Error(`vigil ${command} exited (${child.exitCode}): ${stderr}`));
        if (Date.now() > deadline) return reject(new Error(`vigil ${command}: no ${pattern} within ${timeoutMs} ms: ${stderr}`));
        setTimeout(poll, 20);
      };
      poll();
    }),
    stop: () => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    }),
  };
  await service.waitFor(ready);
  return service;
}
