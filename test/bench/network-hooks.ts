/**
 * What the network hooks cost the connections they watch, with the real
 * sensor running in this process, on `tcp-load` (loopback connections to a
 * listener of its own; its figure is its fastest chunk):
 *   override: `tcp-load connect` with a policy whose security_socket_connect
 *             hook carries Override — the cgroup connect4/connect6 programs on
 *             the cgroup v2 root, the hook at sys_enter_connect and the
 *             clearing program at sys_exit_connect — its selector rejecting
 *             the load, against the same loop with nothing of ours;
 *   state:    `tcp-load rr` (connect, one byte each way, close) with
 *             tcp_connect, tcp_sendmsg and tcp_close hooked (the exit of
 *             connect, sock:sock_send_length, sock:inet_sock_set_state), the
 *             selectors rejecting, against the same loop with nothing of ours.
 * The cases alternate within each round (their order rotating); the figures
 * are medians over the rounds.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { benchBinaryPath } from '../../services/lib/paths.js';
import { defaultCompileEnv, loadPolicyText } from '../../services/enforcer/index.js';
import type { PolicyProgram } from '../../services/lib/policy-program.js';
import { startSensor } from '../support/sensor.js';
import { median } from './stats.js';

const REJECT = `matchBinaries:
            - operator: In
              values:
                - /usr/bin/containerd-shim`;

const sock = `
      args:
        - index: 0
          type: sock`;

const POLICIES = {
  override: `
    - call: security_socket_connect
      syscall: false
      args:
        - index: 1
          type: sockaddr
      selectors:
        - ${REJECT}
          matchActions:
            - action: Override`,
  state: ['tcp_connect', 'tcp_close', 'tcp_sendmsg'].map((call) => `
    - call: ${call}
      syscall: false${sock}
      selectors:
        - ${REJECT}`).join(''),
} as const;
export type NetworkCase = keyof typeof POLICIES;

function policy(name: NetworkCase): PolicyProgram {
  const yaml = `apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: bench-net-${name}\nspec:\n  kprobes:${POLICIES[name]}\n`;
  return loadPolicyText(yaml, defaultCompileEnv())[0]!.program;
}

export interface NetworkHookCost { load: string; bareNs: number; vigilNs: number; rounds: number; policyEvents: number }

async function tcpLoad(mode: 'connect' | 'rr', connections: number): Promise<number> {
  const { stdout } = await promisify(execFile)(benchBinaryPath('tcp-load'), [mode, String(connections)]);
  return (JSON.parse(stdout) as { bestNs: number }).bestNs;
}

export async function measureNetworkHookCost(connections = 20_000, rounds = 5): Promise<Record<NetworkCase, NetworkHookCost>> {
  const h = startSensor('bench-net');
  const out = {} as Record<NetworkCase, NetworkHookCost>;
  try {
    for (const [name, mode] of [['override', 'connect'], ['state', 'rr']] as const) {
      const program = policy(name);
      const bare: number[] = [];
      const vigil: number[] = [];
      const before = h.events.length;
      for (let round = 0; round < rounds; round++) {
        const withPolicy = async (): Promise<void> => {
          await h.sensor.loadPolicy(program);
          try {
            vigil.push(await tcpLoad(mode, connections));
          } finally {
            await h.sensor.unloadPolicy(program.name);
          }
        };
        const withoutPolicy = async (): Promise<void> => { bare.push(await tcpLoad(mode, connections)); };
        for (const step of round % 2 ? [withPolicy, withoutPolicy] : [withoutPolicy, withPolicy]) await step();
      }
      const policyEvents = h.events.slice(before).filter((e) => e.event.process_kprobe !== undefined).length;
      out[name] = { load: `tcp-load ${mode}`, bareNs: median(bare), vigilNs: median(vigil), rounds, policyEvents };
    }
  } finally {
    h.stop();
  }
  return out;
}
