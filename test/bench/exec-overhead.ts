/**
 * Exec-heavy overhead: 5,000 posix_spawn of /bin/true with no sensor, against
 * the same with `vigil agent` running (stdout JSON to /dev/null) and one gRPC
 * subscriber attached that receives every event, in one or more variants of
 * the agent: with no policy, or with a policy file loaded from its
 * `--policy-dir` (a temporary directory holding a copy of the file). Each
 * round runs the no-sensor baseline before and after every variant, and a
 * variant's run is compared with the mean of the two baselines around it:
 * this machine's speed drifts by several per cent over the ~20 s between a
 * round's first baseline and its last agent run, which a baseline taken at
 * the round's start alone would count as the agent's. The ratio is the
 * median of the rounds' ratios.
 *
 * Each agent is measured twice: first just after it started (cold: V8
 * compiles the event path while the 10,000 events of the run go through it,
 * which costs the agent about half as much CPU again), then once more
 * (warm), which is what an agent that has been running pays. Both are
 * reported; the warm figure is the one to hold against the target.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { benchBinaryPath } from '../../services/lib/paths.js';
import { startAgent, type AgentProcess } from '../support/agent.js';
import { waitFor } from '../support/wait.js';
import { median } from './stats.js';

/**
 * Runs the spawn loop without blocking this process: the subscriber here
 * keeps reading while it runs, as a live one does (a blocked one would let
 * the agent queue the run's events instead of sending them).
 */
async function spawnSeconds(n: number): Promise<number> {
  const { stdout } = await promisify(execFile)(benchBinaryPath('spawn-load'), [String(n)], { encoding: 'utf8' });
  return (JSON.parse(stdout) as { seconds: number }).seconds;
}

/** A GetEvents subscriber that counts messages without decoding them. */
function subscribe(port: number): { received: () => number; close: () => void } {
  const client = new grpc.Client(`localhost:${port}`, grpc.credentials.createInsecure());
  let received = 0;
  const call = client.makeServerStreamRequest<Buffer, Buffer>('/tetragon.FineGuidanceSensors/GetEvents',
    (b) => b, (b) => b, Buffer.alloc(0));
  call.on('data', () => { received++; });
  call.on('error', () => { /* cancelled at close */ });
  return { received: () => received, close: () => { call.cancel(); client.close(); } };
}

/** An agent to measure: with no policy, or with the policy file `policyFile` loaded from its policy directory. */
export interface AgentVariant { policyFile?: string }

export interface AgentVariantResult {
  policyFile: string | undefined;
  /** Each round's run just after the agent started, and its run after that one. */
  coldSeconds: number[]; agentSeconds: number[];
  coldRatio: number; ratio: number;
  eventsReceived: number; eventsExpected: number;
}
export interface ExecOverheadResult { baselineSeconds: number[]; variants: AgentVariantResult[] }


/**
 * Starts the agent of `variant`; with a policy, resolves once the agent logged
 * it loaded, trying up to 3 agents (the parse of a policy text has a time cap,
 * which a machine busy with other work can exceed) before throwing.
 */
async function startVariant(variant: AgentVariant): Promise<{ agent: AgentProcess; cleanup: () => void }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startVariantOnce(variant);
    } catch (err) {
      if (attempt === 3) throw err;
      console.error(`exec overhead: ${(err as Error).message}; starting the agent again`);
    }
  }
}

async function startVariantOnce(variant: AgentVariant): Promise<{ agent: AgentProcess; cleanup: () => void }> {
  if (variant.policyFile === undefined) return { agent: await startAgent(), cleanup: () => {} };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-bench-policy-'));
  const file = path.join(dir, path.basename(variant.policyFile));
  fs.copyFileSync(variant.policyFile, file);
  const cleanup = (): void => fs.rmSync(dir, { recursive: true, force: true });
  let agent: AgentProcess | undefined;
  try {
    agent = await startAgent(['--policy-dir', dir]);
    const started = agent;
    // policy-dir.ts logs "<file>: loaded <names>" once the file's policies are in the kernel, or "<file>: <error>",
    // each after the log's "vigil agent: " (the policy store's audit line names the file after "added from ").
    const outcome = await waitFor(`the agent to load ${file}`, () => {
      const lines = started.stderr().split('\n').filter((l) => l.includes(`: ${file}:`));
      return lines.find((l) => l.includes(`${file}: loaded `)) ?? (lines.length ? new Error(lines.join('\n')) : undefined);
    }, 30_000);
    if (outcome instanceof Error) throw outcome;
    return { agent, cleanup };
  } catch (err) {
    await agent?.stop();
    cleanup();
    throw err;
  }
}

export async function measureExecOverhead(spawns = 5000, rounds = 3, variants: AgentVariant[] = [{}]): Promise<ExecOverheadResult> {
  await spawnSeconds(500); // warm the page cache and the dynamic loader
  const baselineSeconds: number[] = [];
  const results: AgentVariantResult[] = variants.map((v) => ({
    policyFile: v.policyFile, coldSeconds: [], agentSeconds: [], coldRatio: NaN, ratio: NaN, eventsReceived: 0, eventsExpected: spawns * rounds * 2 * 2,
  }));
  const coldRatios: number[][] = variants.map(() => []);
  const ratios: number[][] = variants.map(() => []);
  for (let round = 0; round < rounds; round++) {
    let before = await spawnSeconds(spawns);
    baselineSeconds.push(before);
    for (const [i, variant] of variants.entries()) {
      const { agent, cleanup } = await startVariant(variant);
      const sub = subscribe(agent.port);
      let cold: number, warm: number;
      try {
        await new Promise((r) => setTimeout(r, 300)); // the subscription is in place
        cold = await spawnSeconds(spawns);
        await new Promise((r) => setTimeout(r, 1000)); // let the last events arrive
        warm = await spawnSeconds(spawns);
        await new Promise((r) => setTimeout(r, 1000));
      } finally {
        results[i]!.eventsReceived += sub.received();
        sub.close();
        await agent.stop();
        cleanup();
      }
      const after = await spawnSeconds(spawns);
      baselineSeconds.push(after);
      const reference = (before + after) / 2;
      results[i]!.coldSeconds.push(cold);
      results[i]!.agentSeconds.push(warm);
      coldRatios[i]!.push(cold / reference);
      ratios[i]!.push(warm / reference);
      before = after;
    }
  }
  results.forEach((r, i) => {
    r.coldRatio = median(coldRatios[i]!);
    r.ratio = median(ratios[i]!);
  });
  return { baselineSeconds, variants: results };
}
