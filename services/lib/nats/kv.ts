/**
 * Cluster-wide TracingPolicies in a JetStream key-value bucket,
 * `vigil_policies`: one key per policy, its value the policy's YAML text,
 * the last 5 revisions kept.
 *
 * Keys are `policyKey(name, namespace)`: the name for a TracingPolicy,
 * `<namespace>/<name>` for a TracingPolicyNamespaced. '/' rather than '.'
 * because Kubernetes names may hold dots but never '/', so a namespaced key
 * cannot collide with a cluster-wide policy called `<namespace>.<name>`. The
 * YAML remains the authority on a policy's name and namespace.
 */
import type { KV, KvEntry, NatsConnection, QueuedIterator } from 'nats';

export const POLICY_BUCKET = 'vigil_policies';
const HISTORY = 5;

/** `yaml` undefined: the policy was deleted. */
export interface PolicyChange { key: string; yaml?: string }

export interface PolicyWatch {
  stop(): void;
  /** Resolves once the current values have been delivered; rejects if the watch could not start. */
  readonly ready: Promise<void>;
}

export function policyKey(name: string, namespace?: string): string {
  return namespace === undefined || namespace === '' ? name : `${namespace}/${name}`;
}

export class PolicyKv {
  private constructor(private readonly kv: KV, private readonly log: (line: string) => void) {}

  /** Opens the bucket, creating it if missing. */
  static async open(nc: NatsConnection, opts: { log?: (line: string) => void } = {}): Promise<PolicyKv> {
    const kv = await nc.jetstream().views.kv(POLICY_BUCKET, { history: HISTORY });
    return new PolicyKv(kv, opts.log ?? ((line) => console.error(`policy kv: ${line}`)));
  }

  /** Stores a policy's YAML; returns the new revision. */
  put(key: string, yaml: string): Promise<number> {
    return this.kv.put(key, yaml);
  }

  async delete(key: string): Promise<void> {
    await this.kv.delete(key);
  }

  /**
   * Calls `onChange` for every policy stored now, then for each later put and
   * delete, in order. Keys deleted before the watch began are not reported.
   */
  watch(onChange: (change: PolicyChange) => void): PolicyWatch {
    let stopped = false;
    let initialized = false;
    let iter: QueuedIterator<KvEntry> | undefined;
    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const ready = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
    ready.catch(() => {});

    const run = async (): Promise<void> => {
      // initializedFn runs in order after the last of the current values.
      iter = await this.kv.watch({ key: '>', initializedFn: () => { initialized = true; resolve(); } });
      if (stopped) iter.stop();
      for await (const e of iter) {
        if (stopped) break;
        const deleted = e.operation !== 'PUT';
        // Before initialization a delete marker is only the last state of a key that no longer exists.
        if (deleted && !initialized) continue;
        try {
          onChange(deleted ? { key: e.key } : { key: e.key, yaml: e.string() });
        } catch (err) {
          this.log(`${e.key}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
    };
    run().catch((err: unknown) => {
      reject(err);
      this.log(`watch failed: ${err instanceof Error ? err.message : String(err)}`);
    });

    return {
      ready,
      stop: () => {
        stopped = true;
        iter?.stop();
      },
    };
  }
}
