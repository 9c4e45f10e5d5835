/**
 * Helpers for policy tests on the real kernel: scoped copies of test binaries
 * (so a test's enforcing policy can only touch what the test started), YAML
 * policies compiled by the real front end, and runs of processes with their
 * policy events.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { repoRoot } from '../../services/lib/paths.js';
import { defaultCompileEnv, loadPolicyText } from '../../services/enforcer/index.js';
import type { PolicyProgram } from '../../services/lib/policy-program.js';
import type { SensorHarness } from './sensor.js';
import { exited, waitFor } from './wait.js';

export const PROBE = path.join(repoRoot, 'build', 'fixtures', 'probe');
export const BUSYBOX = '/bin/busybox';

let counter = 0;
export const scratch = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-policy-')));

/**
 * A private copy of a binary in a directory of its own (`<scratch>/<name>-N/`),
 * keeping its file name (busybox picks its applet from it): the path is unique
 * to the caller, so policies on it are scoped.
 */
export function copyOf(binary: string, name = path.basename(binary)): string {
  const dir = path.join(scratch, `${name}-${++counter}`);
  fs.mkdirSync(dir);
  const dest = path.join(dir, path.basename(binary));
  fs.copyFileSync(binary, dest);
  fs.chmodSync(dest, 0o755);
  return dest;
}

/** A new file under the scratch dir, with content. */
export function scratchFile(name: string, content = 'x\n'): string {
  const file = path.join(scratch, `${name}-${++counter}`);
  fs.writeFileSync(file, content);
  return file;
}

export function compile(yaml: string): PolicyProgram[] {
  return loadPolicyText(yaml, defaultCompileEnv()).map((p) => p.program);
}

/** A TracingPolicy document as YAML, from a spec given as an object. */
export function policyYaml(name: string, spec: Record<string, unknown>, mode?: 'enforce' | 'monitor'): string {
  const options = mode ? { options: [{ name: 'policy-mode', value: mode }] } : {};
  return YAML.stringify({ apiVersion: 'cilium.io/v1alpha1', kind: 'TracingPolicy', metadata: { name }, spec: { ...options, ...spec } });
}

/** A sys_openat hook (args dfd, filename, flags; return value) with the given selectors. */
export function openatHook(selectors: Record<string, unknown>[]): Record<string, unknown> {
  return {
    call: 'sys_openat', syscall: true, return: true,
    args: [{ index: 0, type: 'int' }, { index: 1, type: 'string' }, { index: 2, type: 'int' }],
    returnArg: { index: 0, type: 'int' },
    selectors,
  };
}

/** Loads the policy into the harness's sensor for the duration of `body`. */
export async function withPolicy(h: SensorHarness, yaml: string, body: () => Promise<void>): Promise<void> {
  const programs = compile(yaml);
  for (const p of programs) await h.sensor.loadPolicy(p);
  try {
    await body();
  } finally {
    for (const p of programs) await h.sensor.unloadPolicy(p.name);
  }
}

export interface RunResult { pid: number; code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/** Runs a command to its end; the sensor's events for it can then be read with policyEvents(). */
export async function run(cmd: string, args: string[], opts: { stdin?: string } = {}): Promise<RunResult> {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  child.stdin.on('error', () => { /* a process that exits (or is killed) before reading its input */ });
  child.stdin.end(opts.stdin ?? '');
  const { code, signal } = await exited(child);
  return { pid: child.pid!, code, signal, stdout, stderr };
}

type PolicyEventType = 'process_kprobe' | 'process_tracepoint' | 'process_uprobe' | 'process_lsm';
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type PolicyEvent = Record<string, any>;

/** Waits until the sensor has reported the exit of every pid (their earlier events, and their children's execs, came before). */
export async function exitsSeen(h: SensorHarness, pids: number[]): Promise<void> {
  await waitFor(`exit events of ${pids.join(',')}`, () =>
    pids.every((pid) => h.events.some((e) => e.event.process_exit?.process.pid.value === pid)) ? true : undefined);
}

/**
 * Policy events of a policy for processes whose pid is in `pids`, after their exits have been seen;
 * with `anyProcess`, the policy's events whatever process they name (a hook in softirq names whichever
 * process was interrupted, the sender's own on loopback unless the machine deferred it to ksoftirqd).
 */
export async function policyEvents(h: SensorHarness, policy: string, pids: number[], anyProcess = false): Promise<PolicyEvent[]> {
  await exitsSeen(h, pids);
  const out: PolicyEvent[] = [];
  for (const e of h.events) {
    for (const type of ['process_kprobe', 'process_tracepoint', 'process_uprobe', 'process_lsm'] as PolicyEventType[]) {
      const payload = e.event[type] as PolicyEvent | undefined;
      if (payload?.policy_name === policy && (anyProcess || pids.includes(payload.process?.pid?.value))) out.push(payload);
    }
  }
  return out;
}
