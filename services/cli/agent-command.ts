/**
 * `vigil agent`: the embedded default, everything on one node in one process
 * over an in-process bus: the sensor, the enforcer's policy store (driving the
 * sensor directly) and follow-up actions, the public gRPC API, and the
 * exporters (JSON lines on stdout, Prometheus on :2112, optionally a file and
 * OTLP). Logs go to stderr, so stdout carries only events. Policy changes
 * through the API need the unix socket, mutual TLS or an explicit opt-in
 * (services/api/authorization.ts; the API_SECURITY_FLAGS).
 *
 * Enforcement across restarts: the sensor pins its links under --bpf-pin-dir
 * (services/sensor/sensor.ts), so a kill -9 leaves the policies enforcing in
 * the kernel; the policy store keeps API-added policies in --state-dir. At
 * start the agent loads the kept policies, the policy directory's and, with
 * the Kubernetes API configured, its TracingPolicy objects, and
 * only then removes the pins a previous (killed) agent left, so enforcement
 * has no gap. A clean stop (SIGTERM, SIGINT) removes its own pins.
 */
import { LocalBus } from '../lib/bus.js';
import { VERSION } from '../lib/version.js';
import { EXPORTER_FLAGS, exporterConfigFromArgs, startExporters, type ExporterConfig } from '../exporter/index.js';
import { formatFlags, parseArgs, UsageError, type FlagSpecs, type ParsedArgs } from '../lib/flags.js';
import { PublicApiServer } from '../api/index.js';
import { defaultCompileEnv, policyMethods, watchPolicyCrds, watchPolicyDir, PolicyStore, FollowUpActions } from '../enforcer/index.js';
import { Sensor } from '../sensor/index.js';
import { DEFAULT_BPF_PIN_DIR, DEFAULT_STATE_DIR } from '../lib/defaults.js';
import { SENSOR_FLAGS, containerSourcesOf, maxProcessesOf, nodeNameOf, policyDirOf, publicApiOptions, untilSignal } from './common-flags.js';

export const AGENT_FLAGS: FlagSpecs = {
  ...SENSOR_FLAGS,
  'policy-dir': { kind: 'string', value: 'DIR', help: 'load the tracing policies of DIR/*.yaml and follow its changes' },
  'bpf-pin-dir': { kind: 'string', value: 'DIR', help: `pin the BPF links in DIR (bpffs) so that policies keep enforcing after a kill -9, empty to disable (default: ${DEFAULT_BPF_PIN_DIR})` },
  'state-dir': { kind: 'string', value: 'DIR', help: `keep the policies added through the API in DIR across restarts, empty to disable (default: ${DEFAULT_STATE_DIR})` },
  'no-export-stdout': { kind: 'bool', help: 'no JSON lines on stdout (the same as --export-stdout=false)' },
  ...EXPORTER_FLAGS,
  help: { kind: 'bool', short: 'h', help: 'show this help' },
};

export const AGENT_USAGE = `Usage: vigil agent [flags]\n\nRun the sensor, the policy store, the gRPC API and the exporters in one process.\n\n${formatFlags(AGENT_FLAGS)}`;

/** The agent's exporters: JSON lines on stdout unless --no-export-stdout or --export-stdout=false. Throws UsageError. */
export function agentExporterConfig(args: ParsedArgs): ExporterConfig {
  const noStdout = args.bool('no-export-stdout');
  if (noStdout && args.bool('export-stdout')) throw new UsageError('--no-export-stdout and --export-stdout contradict each other');
  return exporterConfigFromArgs(args, { stdout: !noStdout });
}

export async function runAgent(argv: string[]): Promise<void> {
  const args = parseArgs(argv, AGENT_FLAGS);
  if (args.bool('help')) {
    console.log(AGENT_USAGE);
    return;
  }
  if (args.positional.length) throw new UsageError(`unexpected argument: ${args.positional[0]}`);
  const nodeName = nodeNameOf(args);
  const policyDir = policyDirOf(args);
  const exporterConfig = agentExporterConfig(args);
  const log = (line: string): void => console.error(`vigil agent: ${line}`);

  const bus = new LocalBus();
  const exporters = await startExporters(bus, exporterConfig, { version: VERSION, log });
  const containers = await containerSourcesOf(args, nodeName, log);
  const api = new PublicApiServer(bus, publicApiOptions(args, nodeName));
  const sensor = new Sensor(bus, {
    nodeName, ...maxProcessesOf(args), containers: containers.registry, pinDir: args.string('bpf-pin-dir') ?? DEFAULT_BPF_PIN_DIR,
    externalStats: () => ({ subscriberDropped: api.stats().droppedTotal, publishDropped: 0 }),
  });
  sensor.start();
  const restoreStart = Date.now();
  const policies = new PolicyStore(sensor, defaultCompileEnv(), log, { stateDir: args.string('state-dir') ?? DEFAULT_STATE_DIR });
  const { restored, failed } = await policies.restore();
  const followUps = new FollowUpActions(bus, nodeName, policies);
  bus.subscribeAudit((record) => log(`audit ${JSON.stringify(record)}`));
  api.addMethods(policyMethods(policies));
  const { tcpPort } = await api.start();
  const metrics = exporters.metricsPort === undefined ? '' : `, metrics on port ${exporters.metricsPort}`;
  console.error(`vigil agent ${VERSION} on node ${nodeName}: gRPC API on port ${tcpPort}${metrics}, ${sensor.stats().cache.size} processes from /proc`);
  const policyWatch = policyDir === undefined ? undefined : watchPolicyDir(policyDir, policies, log);
  await policyWatch?.ready;
  const crdWatch = await watchPolicyCrds(policies, { nodeName, log, ...(args.has('kubeconfig') && { kubeconfig: args.string('kubeconfig')! }) });
  // The policies are in this sensor's programs now: the pins of a killed agent can go,
  // unless a kept policy did not load again (then the old programs keep enforcing it).
  const released = failed.length === 0 ? sensor.releasePrevious() : [];
  if (failed.length > 0) log(`kept the pins of any previous agent: ${failed.length} policy state files did not load (${failed.join(', ')})`);
  if (restored.length > 0 || released.length > 0) {
    log(`${restored.length} policies restored, ${released.length} pinned generations of a previous agent released, in ${Date.now() - restoreStart} ms`);
  }
  if (sensor.pinnedIn() !== undefined) log(`BPF links pinned in ${sensor.pinnedIn()}`);

  await untilSignal('agent');
  await crdWatch?.close();
  policyWatch?.close();
  followUps.close();
  sensor.stop();
  await containers.close();
  await api.stop();
  await exporters.close();
}
