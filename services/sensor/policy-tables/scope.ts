/**
 * Scoped policies in the kernel: for each policy with a scope (a namespaced
 * policy, a podSelector, a containerSelector), the cgroup2 ids of the
 * containers it covers, in vigil_policy_cgroups. Recomputed whenever the
 * container registry changes, so a container started after the policy is
 * covered without reloading anything; the first processes of a container can
 * run before its pod metadata arrives, and are not covered until then.
 */
import type { LabelSelector, PolicyScope } from '../../lib/policy-program.js';
import type { BpfObject } from '../kernel/addon.js';
import { StructLayout, StructWriter, type BtfSource } from '../kernel/layout.js';
import type { ContainerInfo, ContainerRegistry } from '../containers/registry.js';

/** Kubernetes label-selector semantics: every matchLabels pair and every expression must hold; empty selects all. */
export function selectorMatches(selector: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (!selector) return true;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const value = labels[e.key];
    switch (e.operator) {
      case 'In': if (!has || !(e.values ?? []).includes(value!)) return false; break;
      case 'NotIn': if (has && (e.values ?? []).includes(value!)) return false; break;
      case 'Exists': if (!has) return false; break;
      case 'DoesNotExist': if (has) return false; break;
    }
  }
  return true;
}

/** Whether a container is covered by a scope: only containers of known pods are. */
export function inScope(scope: PolicyScope, container: ContainerInfo): boolean {
  const pod = container.pod;
  if (!pod || !pod.podName) return false;
  if (scope.namespace !== undefined && pod.namespace !== scope.namespace) return false;
  return selectorMatches(scope.podSelector, pod.labels) && selectorMatches(scope.containerSelector, { name: pod.containerName });
}

export class ScopeTables {
  private readonly keyLayout: StructLayout;
  private readonly scopes = new Map<number, { scope: PolicyScope; cgroups: Set<bigint> }>();
  private readonly unsubscribe?: () => void;

  constructor(private readonly object: BpfObject, btf: BtfSource, private readonly registry?: ContainerRegistry) {
    this.keyLayout = new StructLayout('vigil_scope_key', btf);
    this.unsubscribe = registry?.onChange(() => { for (const policy of this.scopes.keys()) this.sync(policy); });
  }

  close(): void {
    this.unsubscribe?.();
  }

  /** Starts covering a policy's containers (before its hooks are attached). */
  set(policy: number, scope: PolicyScope): void {
    this.scopes.set(policy, { scope, cgroups: new Set() });
    this.sync(policy);
  }

  remove(policy: number): void {
    const entry = this.scopes.get(policy);
    if (!entry) return;
    for (const cgroup of entry.cgroups) this.object.mapDelete('vigil_policy_cgroups', this.key(policy, cgroup));
    this.scopes.delete(policy);
  }

  /** The cgroups a policy covers now. */
  cgroups(policy: number): bigint[] {
    return [...(this.scopes.get(policy)?.cgroups ?? [])];
  }

  private sync(policy: number): void {
    const entry = this.scopes.get(policy)!;
    const wanted = new Set((this.registry?.containers() ?? []).filter((c) => inScope(entry.scope, c)).map((c) => c.cgroupId));
    for (const cgroup of wanted) {
      if (!entry.cgroups.has(cgroup)) this.object.mapUpdate('vigil_policy_cgroups', this.key(policy, cgroup), Buffer.from([1]));
    }
    for (const cgroup of entry.cgroups) {
      if (!wanted.has(cgroup)) this.object.mapDelete('vigil_policy_cgroups', this.key(policy, cgroup));
    }
    entry.cgroups = wanted;
  }

  private key(policy: number, cgroup: bigint): Buffer {
    return new StructWriter(this.keyLayout).set('policy', policy).set('cgroup_id', cgroup).buf;
  }
}
