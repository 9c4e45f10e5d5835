/**
 * `vigil enforcer`: the split shape's policy service. It alone owns policy
 * state — from the policy directory, its gRPC policy API (which the sensor's
 * public address forwards to), and the cluster-wide NATS KV bucket — and
 * programs its node's sensor only through the control API. It applies
 * follow-up actions on the sensor's events and publishes every action it
 * takes as an audit record. When the sensor restarts (it reports fewer
 * policies than the store holds), every policy is re-applied; the gap is
 * logged and audited. Its policy API answers policy changes on its unix
 * socket (root only, where the sensor forwards them) and over TCP only as
 * the API_SECURITY_FLAGS allow (services/api/authorization.ts).
 */
import type { NatsConnection } from 'nats';
import { VERSION } from '../lib/version.js';
import { RemoteSensorControl } from '../lib/control-api.js';
import { PolicyKv, type PolicyChange } from '../lib/nats/index.js';
import { API_SECURITY_FLAGS, SENSOR_FLAGS, apiSecurityOptions, nodeNameOf, policyDirOf, untilSignal } from './common-flags.js';
import { formatFlags, parseArgs, UsageError, type FlagSpecs } from '../lib/flags.js';
import { CONTROL_FLAGS, NATS_FLAGS, connectBus, controlSocketOf } from './split-flags.js';
import { DEFAULT_ENFORCER_SOCKET } from '../lib/defaults.js';
import { PublicApiServer } from '../api/index.js';
import { defaultCompileEnv, policyMethods, replacePolicies, unloadPolicies, watchPolicyCrds, watchPolicyDir, PolicyStore, FollowUpActions, type LoadedText } from '../enforcer/index.js';

const FLAGS: FlagSpecs = {
  'node-name': { kind: 'string', value: 'NAME', help: 'the node whose sensor this enforcer programs (default: $NODE_NAME or the hostname)' },
  ...NATS_FLAGS,
  ...CONTROL_FLAGS,
  'server-unix-socket': { kind: 'string', value: 'PATH', help: `policy API unix socket (default: ${DEFAULT_ENFORCER_SOCKET})` },
  'server-address': { kind: 'string', value: 'HOST:PORT', help: 'policy API TCP address, empty to disable (default: empty)' },
  ...API_SECURITY_FLAGS,
  'policy-dir': { kind: 'string', value: 'DIR', help: 'load the tracing policies of DIR/*.yaml and follow its changes' },
  'policy-kv': { kind: 'bool', help: 'follow the cluster-wide policies of the NATS KV bucket vigil_policies (default: true)' },
  kubeconfig: SENSOR_FLAGS.kubeconfig!,
  help: { kind: 'bool', short: 'h', help: 'show this help' },
};

const KV_DOMAIN = 'kv';
const RESYNC_MS = 250;

export async function runEnforcer(argv: string[]): Promise<void> {
  const args = parseArgs(argv, FLAGS);
  if (args.bool('help')) {
    console.log(`Usage: vigil enforcer [flags]\n\nRun the policy store of the split shape, programming the node's sensor.\n\n${formatFlags(FLAGS)}`);
    return;
  }
  if (args.positional.length) throw new UsageError(`unexpected argument: ${args.positional[0]}`);
  const nodeName = nodeNameOf(args);
  const policyDir = policyDirOf(args);
  const log = (line: string): void => console.error(`vigil enforcer: ${line}`);
  const bus = await connectBus(args, nodeName, log);
  const control = new RemoteSensorControl(`unix://${controlSocketOf(args)}`, bus, nodeName);
  await control.waitForReady(60_000);
  const store = new PolicyStore(control, defaultCompileEnv(), log);
  const followUps = new FollowUpActions(bus, nodeName, store);
  bus.subscribeAudit((record) => log(`audit ${JSON.stringify(record)}`));

  const api = new PublicApiServer(bus, {
    tcpAddress: args.string('server-address') ?? '', unixSocket: args.string('server-unix-socket') ?? DEFAULT_ENFORCER_SOCKET,
    version: VERSION, nodeName, ...apiSecurityOptions(args),
  });
  api.addMethods(policyMethods(store));
  await api.start();

  const policyWatch = policyDir === undefined ? undefined : watchPolicyDir(policyDir, store, log);
  const kvWatch = args.string('policy-kv') === 'false' ? undefined : await followKv(bus.connection, store, log);
  const crdWatch = await watchPolicyCrds(store, { nodeName, log, ...(args.has('kubeconfig') && { kubeconfig: args.string('kubeconfig')! }) });
  const resync = followSensorRestarts(control, store, (gapMs, failed) => bus.publishAudit({
    node: nodeName, time: Date.now(), action: 'reapply-policies', targets: [],
    outcome: failed.length === 0 ? 'done' : 'partial', details: `sensor restart: policies re-applied ${gapMs} ms after it was last seen with them${failed.length ? `; failed: ${failed.join(', ')}` : ''}`,
  }), log);
  console.error(`vigil enforcer ${VERSION} on node ${nodeName}: programming the sensor at ${controlSocketOf(args)}`);

  await untilSignal('enforcer');
  resync.stop();
  kvWatch?.stop();
  await crdWatch?.close();
  policyWatch?.close();
  followUps.close();
  await api.stop();
  control.close();
  await bus.close();
}

/**
 * Cluster-wide policies: each KV key's YAML is added to the store in domain
 * "kv", deleted with the key, and replaced on change as the policy directory
 * replaces a file's (policy-replace.ts): a new value that does not compile,
 * or that the sensor refuses, leaves the previous one enforcing.
 */
async function followKv(nc: NatsConnection, store: PolicyStore, log: (line: string) => void): Promise<{ stop(): void }> {
  const kv = await PolicyKv.open(nc, { log });
  const loaded = new Map<string, LoadedText>();
  const apply = async (change: PolicyChange): Promise<void> => {
    const source = `kv:${change.key}`;
    const previous = loaded.get(change.key);
    if (change.yaml === undefined) {
      await unloadPolicies(store, previous, source, log);
      loaded.delete(change.key);
      return;
    }
    const { loaded: now, error } = await replacePolicies(store, previous, change.yaml, { source, domain: KV_DOMAIN, log });
    if (now) loaded.set(change.key, now);
    else loaded.delete(change.key);
    if (error) log(`${source}: ${error.message}`);
  };
  let chain = Promise.resolve();
  const watch = kv.watch((change) => { chain = chain.then(() => apply(change)); });
  await watch.ready;
  return watch;
}

/**
 * Polls the sensor for what it has loaded; when policies of the store are
 * missing (a restarted sensor starts empty), re-applies them all and reports
 * how long the node ran without them (from the last poll that saw them).
 */
function followSensorRestarts(control: RemoteSensorControl, store: PolicyStore, onReapplied: (gapMs: number, failed: string[]) => void, log: (line: string) => void): { stop(): void } {
  let lastComplete = Date.now();
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    (async () => {
      const expected = store.list().filter((p) => p.state === 'enabled' || p.state === 'disabled').map((p) => p.name);
      const loaded = new Set(await control.loaded());
      if (expected.every((name) => loaded.has(name))) {
        lastComplete = Date.now();
        return;
      }
      const failed = await store.reapply(loaded);
      const gapMs = Date.now() - lastComplete;
      log(`sensor lost its policies (restart?): re-applied ${expected.length - failed.length} of ${expected.length}, ${gapMs} ms without them`);
      onReapplied(gapMs, failed);
      lastComplete = Date.now();
    })().catch(() => { /* the sensor is down: try again at the next tick */ }).finally(() => { busy = false; });
  }, RESYNC_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
