/**
 * Exec-heavy overhead: 5,000 posix_spawn of /bin/true with no sensor, against
 * the same with `vigil agent` running (stdout JSON to /dev/null) and one gRPC
 * subscriber attached that receives every event. Runs alternate so drift on
 * this noisy machine hits both sides.
 */
import { execFileSync } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { benchBinaryPath } from '../../services/lib/paths.js';
import { startAgent } from '../support/agent.js';

function spawnSeconds(n: number): number {
  const out = execFileSync(benchBinaryPath('spawn-load'), [String(n)], { encoding: 'utf8' });
  return (JSON.parse(out) as { seconds: number }).seconds;
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

export interface ExecOverheadResult { baselineSeconds: number[]; agentSeconds: number[]; ratio: number; eventsReceived: number; eventsExpected: number }

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function measureExecOverhead(spawns = 5000, rounds = 3): Promise<ExecOverheadResult> {
  spawnSeconds(500); // warm the page cache and the dynamic loader
  const baselineSeconds: number[] = [];
  const agentSeconds: number[] = [];
  let eventsReceived = 0;
  for (let round = 0; round < rounds; round++) {
    baselineSeconds.push(spawnSeconds(spawns));
    const agent = await startAgent();
    const sub = subscribe(agent.port);
    try {
      await new Promise((r) => setTimeout(r, 300)); // the subscription is in place
      agentSeconds.push(spawnSeconds(spawns));
      await new Promise((r) => setTimeout(r, 1000)); // let the last events arrive
    } finally {
      eventsReceived += sub.received();
      sub.close();
      await agent.stop();
    }
  }
  return { baselineSeconds, agentSeconds, ratio: median(agentSeconds) / median(baselineSeconds), eventsReceived, eventsExpected: spawns * rounds * 2 };
}
