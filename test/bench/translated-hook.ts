/**
 * What a translated hook costs the system calls that serve it when its
 * selectors reject them: `fd_install` (int fd, file), which this kernel serves
 * at the exit of every fd-returning syscall (vigil_sys_exit_one on each
 * one's own sys_exit tracepoint) with a guard (the syscall
 * returned >= 0) and the arguments from the return value, so nothing is read
 * at entry (docs/architecture.md), on `dup-load N` (dup of an fd, close of the copy).
 * Cases, interleaved in each round (their order rotating), with the real
 * sensor running in this process throughout:
 *   bare:      nothing of ours on syscalls:sys_{enter,exit}_dup;
 *   reference: `dup-load -b`: hookcost.bpf.o's program on sys_exit_dup, returning at once;
 *   vigil, one case per selector of SELECTORS: the fd_install policy with
 *              that selector loaded in the sensor, unloaded after; the close
 *              of each iteration runs the sensor's programs too.
 * Each selector rejects dup-load in the kernel, at exit (process conditions),
 * so no event is sent: what is measured is the hook's decision. Each run's
 * figure is its fastest chunk (dup-load.c: the one no other task preempted).
 *
 * On a shared machine another process (a test's sensor) may have its own
 * programs on the dup or raw syscall tracepoints, which every case would pay
 * (and which make ours cheaper: the tracepoints are already enabled): each round first waits
 * up to 20 s for them to go, a round during which one was there is set aside
 * and run again (up to 2 × rounds in all); the medians are of the clean
 * rounds, or of all if none was clean.
 */
import { execFile, execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { benchBinaryPath } from '../../services/lib/paths.js';
import { defaultCompileEnv, loadPolicyText } from '../../services/enforcer/index.js';
import type { PolicyProgram } from '../../services/lib/policy-program.js';
import { startSensor } from '../support/sensor.js';
import { median } from './stats.js';

/** The rejecting selectors measured, by name: the cheapest process condition, and the usual one. */
export const SELECTORS = {
  matchPIDs: `matchPIDs:
            - operator: In
              followForks: false
              values:
                - 1`,
  matchBinaries: `matchBinaries:
            - operator: In
              values:
                - /usr/bin/containerd-shim`,
} as const;
export type SelectorName = keyof typeof SELECTORS;

function policy(selector: SelectorName): PolicyProgram {
  const yaml = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: bench-fd-install-${selector.toLowerCase()}
spec:
  kprobes:
    - call: fd_install
      syscall: false
      args:
        - index: 0
          type: int
        - index: 1
          type: file
      selectors:
        - ${SELECTORS[selector]}
`;
  const programs = loadPolicyText(yaml, defaultCompileEnv()).map((p) => p.program);
  if (programs.length !== 1) throw new Error(`the bench policy compiled to ${programs.length} programs`);
  return programs[0]!;
}

export interface TranslatedHookCost {
  /** ns per dup+close of each round. */
  bareNs: number[];
  referenceNs: number[];
  vigilNs: Record<SelectorName, number[]>;
  /** Medians of the per-round differences over bare. */
  referenceAddedNs: number;
  vigilAddedNs: Record<SelectorName, number>;
  /** Events the sensor published for the policies (0: every call was rejected in the kernel). */
  policyEvents: number;
  /** Rounds run, and those with no other process's program on the dup tracepoints (the ones the figures are of, when any). */
  roundsRun: number;
  cleanRounds: number;
}

const FOREIGN_WAIT_MS = 20_000;

/**
 * Programs that other processes attached to syscalls:sys_{enter,exit}_dup, and
 * programs on the raw sys_enter/sys_exit tracepoints (this process has none
 * between its cases: its policy is unloaded by then).
 */
function foreignDupPrograms(): number {
  const bpftool = <T>(...args: string[]): T[] => JSON.parse(execFileSync('bpftool', ['-j', ...args], { encoding: 'utf8' })) as T[];
  const perf = bpftool<{ pid: number; tracepoint?: string }>('perf', 'list')
    .filter((l) => l.pid !== process.pid && (l.tracepoint === 'sys_enter_dup' || l.tracepoint === 'sys_exit_dup'));
  const raw = bpftool<{ type: string; tp_name?: string }>('link', 'list')
    .filter((l) => l.type === 'raw_tracepoint' && (l.tp_name === 'sys_enter' || l.tp_name === 'sys_exit'));
  return perf.length + raw.length;
}


async function dupLoad(iterations: number, bare: boolean): Promise<number> {
  const { stdout } = await promisify(execFile)(benchBinaryPath('dup-load'), [...(bare ? ['-b'] : []), String(iterations)]);
  return (JSON.parse(stdout) as { bestNs: number }).bestNs;
}

export async function measureTranslatedHookCost(iterations = 1_000_000, rounds = 7): Promise<TranslatedHookCost> {
  const selectors = Object.keys(SELECTORS) as SelectorName[];
  const programs = new Map(selectors.map((s) => [s, policy(s)]));
  const h = startSensor('bench');
  const ns = new Map<string, number[]>([['bare', []], ['reference', []], ...selectors.map((s): [string, number[]] => [s, []])]);
  const run = async (which: string): Promise<number> => {
    const program = programs.get(which as SelectorName);
    if (program === undefined) return dupLoad(iterations, which === 'reference');
    await h.sensor.loadPolicy(program);
    try {
      return await dupLoad(iterations, false);
    } finally {
      await h.sensor.unloadPolicy(program.name);
    }
  };
  const order = [...ns.keys()];
  const clean: boolean[] = [];
  try {
    await dupLoad(Math.ceil(iterations / 10), false); // warm the page cache and the dynamic loader
    for (let round = 0; clean.filter(Boolean).length < rounds && round < 2 * rounds; round++) {
      for (let waited = 0; waited < FOREIGN_WAIT_MS && foreignDupPrograms() > 0; waited += 500) await sleep(500);
      let foreign = foreignDupPrograms();
      for (let i = 0; i < order.length; i++) {
        const which = order[(round + i) % order.length]!;
        ns.get(which)!.push(await run(which));
        foreign += foreignDupPrograms();
      }
      clean.push(foreign === 0);
    }
  } finally {
    h.stop();
  }
  // The clean rounds, or all of them if none was.
  const kept = (xs: number[]): number[] => (clean.some(Boolean) ? xs.filter((_, i) => clean[i]) : xs);
  for (const [which, xs] of ns) ns.set(which, kept(xs));
  const bare = ns.get('bare')!;
  const added = (xs: number[]): number => median(xs.map((x, i) => x - bare[i]!));
  const bySelector = <T>(f: (xs: number[]) => T): Record<SelectorName, T> =>
    Object.fromEntries(selectors.map((s) => [s, f(ns.get(s)!)])) as Record<SelectorName, T>;
  return {
    bareNs: bare, referenceNs: ns.get('reference')!, vigilNs: bySelector((xs) => xs),
    referenceAddedNs: added(ns.get('reference')!), vigilAddedNs: bySelector(added),
    policyEvents: h.events.filter((e) => e.event.process_kprobe !== undefined).length,
    roundsRun: clean.length, cleanRounds: clean.filter(Boolean).length,
  };
}
