/**
 * Enforcement across restarts, end to end: a real agent with a private bpffs
 * pin directory and state directory, a Sigkill policy added through the API,
 * then `kill -9` of the agent. The kernel keeps killing the target while no
 * agent runs (the pinned links keep the programs attached, nobody reads the
 * ring buffer), a restarted agent lists the policy again (from the state
 * directory) and keeps killing, with no gap while it takes over, and a clean
 * stop (SIGTERM) removes every pin.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SensorsClient } from '../../services/cli/client.js';
import { startAgent, type AgentProcess } from '../support/agent.js';
import { PROBE, copyOf, openatHook, policyYaml, run, scratch, scratchFile } from '../support/policy.js';
import { exited, waitFor } from '../support/wait.js';

const pinDir = `/sys/fs/bpf/vigil-test-${process.pid}`;
const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-state-'));
const persistence = { pinDir, stateDir };
const agents: AgentProcess[] = [];

test.after(async () => {
  for (const agent of agents) {
    if (agent.child.exitCode === null && agent.child.signalCode === null) {
      agent.child.kill('SIGKILL');
      await exited(agent.child);
    }
  }
  // Pins left by a failure would keep the test policy enforcing: remove them (unlink detaches).
  fs.rmSync(pinDir, { recursive: true, force: true });
  fs.rmSync(stateDir, { recursive: true, force: true });
  fs.rmSync(scratch, { recursive: true, force: true });
});

/** Starts an agent on the test's directories and waits until it has taken over (released any earlier pins). */
async function start(): Promise<AgentProcess> {
  const agent = await startAgent([], 'ignore', { persistence });
  agents.push(agent);
  await waitFor('the agent pinned its links', () => (/BPF links pinned in (\S+)/.exec(agent.stderr())?.[1]), 20_000);
  return agent;
}

/** Generation directories in the pin directory. */
function generations(): string[] {
  return fs.existsSync(pinDir) ? fs.readdirSync(pinDir).sort() : [];
}

async function listed(agent: AgentProcess): Promise<{ name: string; state: unknown; mode: unknown }[]> {
  const client = new SensorsClient(`localhost:${agent.port}`);
  try {
    const res = await client.unary<{ policies?: { name: string; state: unknown; mode: unknown }[] }>('ListTracingPolicies', {});
    return res.policies ?? [];
  } finally {
    client.close();
  }
}

test('kill -9 with a Sigkill policy loaded: the target is killed while the agent is down and after it restarts', async () => {
  const victim = copyOf(PROBE, 'survive-victim');
  const target = scratchFile('survive-target');
  const first = await start();
  assert.deepEqual(generations().length, 1, 'one pinned generation');

  const client = new SensorsClient(`localhost:${first.port}`);
  try {
    await client.unary('AddTracingPolicy', {
      yaml: policyYaml('survive-kill', {
        kprobes: [openatHook([{ matchBinaries: [{ operator: 'In', values: [victim] }], matchArgs: [{ index: 1, operator: 'Equal', values: [target] }], matchActions: [{ action: 'Sigkill' }] }])],
      }),
    });
  } finally {
    client.close();
  }
  assert.equal((await run(victim, ['open', target])).signal, 'SIGKILL', 'killed with the agent running');
  const [firstGen] = generations();
  assert.ok(fs.readdirSync(path.join(pinDir, firstGen!)).some((f) => f.startsWith('link-')), 'the policy attachment is pinned');
  assert.equal(fs.readdirSync(stateDir).filter((f) => f.endsWith('.json')).length, 1, 'the policy is kept in the state directory');

  first.child.kill('SIGKILL');
  await exited(first.child);
  const downAt = Date.now();

  for (let i = 0; i < 3; i++) {
    const down = await run(victim, ['open', target]);
    assert.equal(down.signal, 'SIGKILL', `killed with the agent down (run ${i + 1})`);
  }
  const bystander = await run(PROBE, ['open', target]);
  assert.equal(bystander.signal, null, 'the policy stays scoped to its binary');

  // Run the target over and over while the new agent takes over: it must never get through.
  let restarting = true;
  const survivors: string[] = [];
  let runs = 0;
  const hammer = (async () => {
    while (restarting) {
      const r = await run(victim, ['open', target]);
      runs++;
      if (r.signal !== 'SIGKILL') survivors.push(`exit ${r.code} signal ${r.signal}: ${r.stdout}`);
    }
  })();
  const restartAt = Date.now();
  const second = await start();
  const policies = await listed(second);
  const backAt = Date.now();
  await waitFor('the previous generation released', () => (/pinned generations of a previous agent released/.test(second.stderr()) ? true : undefined));
  restarting = false;
  await hammer;
  const policy = policies.find((p) => p.name === 'survive-kill');
  assert.ok(policy, `listed after the restart: ${JSON.stringify(policies)}`);
  assert.equal(policy.state, 1, 'TP_STATE_ENABLED');
  assert.deepEqual(survivors, [], `${survivors.length} of ${runs} runs during the restart got through`);
  assert.ok(runs > 0);
  const takeOver = /\d+ policies restored, .* in \d+ ms/.exec(second.stderr())?.[0] ?? '?';
  console.error(`survive: agent down ${restartAt - downAt} ms before the restart; restart to policy listed again ${backAt - restartAt} ms `
    + `(agent: ${takeOver}); ${runs} runs of the target during the take-over, all killed`);

  assert.equal(generations().length, 1, 'the killed agent\'s pins were released');
  assert.notEqual(generations()[0], firstGen);
  assert.equal((await run(victim, ['open', target])).signal, 'SIGKILL', 'killed after the restart');

  await second.stop();
  assert.deepEqual(generations(), [], 'a clean stop removes the pins');
  const free = await run(victim, ['open', target]);
  assert.equal(free.signal, null, 'nothing enforces after a clean stop');
  assert.match(free.stdout, /after/);
  assert.equal(fs.readdirSync(stateDir).filter((f) => f.endsWith('.json')).length, 1, 'the policy is still kept for the next start');
});
