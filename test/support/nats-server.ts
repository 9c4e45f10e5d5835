/**
 * A private nats-server (JetStream on) for tests: loopback only, a free port,
 * its store in a temporary directory. Never a system server, so test files
 * can run concurrently.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { terminate, waitFor } from './wait.js';

const NATS_SERVER = '/usr/sbin/nats-server';

export interface NatsServer {
  /** nats://127.0.0.1:<port> */
  readonly url: string;
  readonly port: number;
  /** The JetStream store directory (kept across restarts, removed by stop). */
  readonly storeDir: string;
  /** Stops the server and removes its store. */
  stop(): Promise<void>;
  /** Stops the server, waits `downMs`, starts it again on the same port with the same store. */
  restart(downMs?: number): Promise<void>;
  /**
   * Freezes the server (SIGSTOP) for `ms`: what it is sent meanwhile waits in
   * its socket, unanswered. Resolves once every thread of the server has
   * stopped (a thread running on the other CPU stops only once the kernel's
   * kick reaches it, which in a busy VM can be after the caller's next send);
   * `thawed` once it was sent SIGCONT.
   */
  freeze(ms: number): Promise<{ thawed: Promise<void> }>;
}

export interface NatsServerOptions {
  /** How long to wait for the server to accept connections. */
  startTimeoutMs?: number;
  /** The largest message the server takes (its max_payload), when not its default of 1 MiB. */
  maxPayload?: number;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Whether every thread of process `pid` is stopped by a signal (state T in /proc/PID/task/TID/stat). */
function allThreadsStopped(pid: number): boolean {
  const taskDir = `/proc/${pid}/task`;
  return fs.readdirSync(taskDir).every((tid) => {
    const stat = fs.readFileSync(`${taskDir}/${tid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T');
  });
}

/** Resolves once something accepts TCP connections on the port and sends NATS's INFO line. */
async function waitForInfo(port: number, child: ChildProcess, output: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`nats-server exited (${child.exitCode ?? child.signalCode}) before it was ready: ${output()}`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const sock = net.connect(port, '127.0.0.1');
      sock.setTimeout(500);
      sock.once('data', (chunk) => { sock.destroy(); resolve(chunk.toString().startsWith('INFO ')); });
      sock.once('error', () => resolve(false));
      sock.once('timeout', () => { sock.destroy(); resolve(false); });
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nats-server on port ${port} not ready after ${timeoutMs} ms: ${output()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServer> {
  const startTimeoutMs = opts.startTimeoutMs ?? 10_000;
  const storeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-nats-'));
  const port = await freePort();
  let child: ChildProcess;
  let log = '';
  // A test process that dies without stop() must not leave its server behind.
  const killOnExit = (): void => { child.kill('SIGKILL'); };
  process.on('exit', killOnExit);

  const config: string[] = [];
  if (opts.maxPayload !== undefined) {
    const file = path.join(storeDir, 'server.conf');
    fs.writeFileSync(file, `max_payload: ${opts.maxPayload}\n`);
    config.push('-c', file);
  }

  const launch = async (): Promise<void> => {
    log = '';
    child = spawn(NATS_SERVER, ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', storeDir, ...config], { stdio: ['ignore', 'ignore', 'pipe'] });
    // Keep the tail of the log for error messages.
    child.stderr!.on('data', (chunk: Buffer) => { log = (log + chunk.toString()).slice(-4000); });
    await waitForInfo(port, child, () => log, startTimeoutMs);
  };

  const halt = (): Promise<void> => terminate(child);

  await launch();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    stop: async () => {
      await halt();
      process.off('exit', killOnExit);
      fs.rmSync(storeDir, { recursive: true, force: true });
    },
    freeze: async (ms) => {
      child.kill('SIGSTOP');
      await waitFor(`nats-server ${child.pid} to stop`, () => (allThreadsStopped(child.pid!) ? true : undefined), 5_000);
      const thawed = new Promise<void>((resolve) => setTimeout(resolve, ms)).then(() => { child.kill('SIGCONT'); });
      return { thawed };
    },
    restart: async (downMs = 0) => {
      await halt();
      if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
      await launch();
    },
  };
}
