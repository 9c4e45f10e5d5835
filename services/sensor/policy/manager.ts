/**
 * The sensor's side of policies: it owns the policy tables and the links of
 * the generic hook programs, and serves SensorPolicyControl. Loading writes
 * every table entry first and attaches last (cookie = hook id), so a hook
 * never runs on a half-written configuration; any failure undoes everything
 * of that policy. Mode and enabled are one vigil_policies entry each.
 */
import type { Hook, PolicyMode, PolicyProgram } from '../../lib/policy-program.js';
import { PolicyLoadError, type PolicyKernelStats, type SensorPolicyControl } from '../../lib/sensor-control.js';
import type { BpfObject } from '../kernel/addon.js';
import { StructLayout, StructWriter } from '../kernel/layout.js';
import { MODE } from './encoding.js';
import { PolicyTables, type StringEntry } from './tables.js';

export const MAX_HOOKS = 256;
export const MAX_POLICIES = 128;
export const MAX_FOLLOW_SLOTS = 64;

/** Generic programs of bpf/hook_*.bpf.c, attached once per hook. */
export const HOOK_PROGRAMS = {
  sysEnter: 'vigil_sys_enter',
  sysExit: 'vigil_sys_exit',
  tracepoint: 'vigil_tracepoint',
  uprobe: 'vigil_uprobe',
  uretprobe: 'vigil_uretprobe',
} as const;

export interface LoadedHook { id: number; hook: Hook; links: number[] }

interface LoadedPolicy {
  program: PolicyProgram;
  index: number;
  hooks: LoadedHook[];
  strings: StringEntry[];
  followSlots: number[];
  enabled: boolean;
}

const u32Key = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };

export class PolicyManager implements SensorPolicyControl {
  private readonly tables: PolicyTables;
  private readonly stateLayout: StructLayout;
  private readonly statsLayout: StructLayout;
  private readonly hookSize: number;
  private readonly followSize: number;
  private readonly policies = new Map<string, LoadedPolicy>();
  private readonly hooksById = new Map<number, { policy: string; hook: Hook }>();
  private readonly freeHooks = Array.from({ length: MAX_HOOKS }, (_, i) => i);
  private readonly freePolicies = Array.from({ length: MAX_POLICIES }, (_, i) => i);
  private readonly freeFollowSlots = Array.from({ length: MAX_FOLLOW_SLOTS }, (_, i) => i);

  constructor(private readonly object: BpfObject) {
    const btf = (name: string) => object.btfStruct(name);
    this.tables = new PolicyTables(btf);
    this.stateLayout = new StructLayout('vigil_policy_state', btf);
    this.statsLayout = new StructLayout('vigil_policy_stats', btf);
    this.hookSize = new StructLayout('vigil_hook', btf).size;
    this.followSize = new StructLayout('vigil_follow_slot', btf).size;
  }

  /** The hook behind a policy record's hook id. */
  hook(id: number): { policy: string; hook: Hook } | undefined {
    return this.hooksById.get(id);
  }

  loaded(): string[] {
    return [...this.policies.keys()];
  }

  async loadPolicy(program: PolicyProgram): Promise<void> {
    const name = program.name;
    if (this.policies.has(name)) throw new PolicyLoadError(name, 'a policy of that name is already loaded');
    if (program.hooks.length > this.freeHooks.length) {
      throw new PolicyLoadError(name, `${program.hooks.length} hooks, only ${this.freeHooks.length} of ${MAX_HOOKS} free`);
    }
    const index = this.freePolicies.shift();
    if (index === undefined) throw new PolicyLoadError(name, `${MAX_POLICIES} policies are loaded already`);
    const policy: LoadedPolicy = { program, index, hooks: [], strings: [], followSlots: [], enabled: true };
    this.policies.set(name, policy);
    try {
      this.writeState(policy, program.mode);
      for (const hook of program.hooks) {
        const id = this.freeHooks.shift()!;
        policy.hooks.push({ id, hook, links: [] });
        const entries = this.tables.encodeHook(hook, id, index, () => {
          const slot = this.freeFollowSlots.shift();
          if (slot === undefined) throw new PolicyLoadError(name, `all ${MAX_FOLLOW_SLOTS} follow slots (followChildren/followForks) are in use`);
          policy.followSlots.push(slot);
          return slot;
        });
        for (const s of entries.strings) {
          this.object.mapUpdate(s.map, s.key, Buffer.from([1]));
          policy.strings.push(s);
        }
        for (const f of entries.follow) this.object.mapUpdate('vigil_follow_slots', u32Key(f.slot), f.value);
        this.object.mapUpdate('vigil_hooks', u32Key(id), entries.hook);
        this.hooksById.set(id, { policy: name, hook });
      }
      for (const loaded of policy.hooks) this.attach(loaded);
    } catch (err) {
      this.release(policy);
      if (err instanceof PolicyLoadError) throw err;
      throw new PolicyLoadError(name, err instanceof Error ? err.message : String(err), { cause: err });
    }
  }

  async unloadPolicy(name: string): Promise<void> {
    this.release(this.get(name));
  }

  async setPolicyMode(name: string, mode: PolicyMode): Promise<void> {
    const policy = this.get(name);
    this.writeState(policy, mode);
    policy.program = { ...policy.program, mode };
  }

  async setPolicyEnabled(name: string, enabled: boolean): Promise<void> {
    const policy = this.get(name);
    policy.enabled = enabled;
    this.writeState(policy, policy.program.mode);
  }

  policyStats(name: string): PolicyKernelStats {
    const policy = this.get(name);
    const perCpu = this.object.mapLookup('vigil_policy_stats', u32Key(policy.index));
    const stats: PolicyKernelStats = { matched: 0, actionsApplied: 0, actionsMonitored: 0, rateLimited: 0 };
    if (!perCpu) return stats;
    const stride = Math.ceil(this.statsLayout.size / 8) * 8;
    const field = (path: string): number => {
      const offset = this.statsLayout.offset(path, 8);
      let sum = 0;
      for (let cpu = 0; cpu + stride <= perCpu.length; cpu += stride) sum += Number(perCpu.readBigUInt64LE(cpu + offset));
      return sum;
    };
    return { matched: field('matched'), actionsApplied: field('actions_applied'), actionsMonitored: field('actions_monitored'), rateLimited: field('rate_limited') };
  }

  /** Detaches every policy; used when the sensor stops. */
  close(): void {
    for (const policy of [...this.policies.values()]) this.release(policy);
  }

  private get(name: string): LoadedPolicy {
    const policy = this.policies.get(name);
    if (!policy) throw new PolicyLoadError(name, 'no such policy is loaded');
    return policy;
  }

  private writeState(policy: LoadedPolicy, mode: PolicyMode): void {
    const state = new StructWriter(this.stateLayout).set('enabled', policy.enabled ? 1 : 0).set('mode', MODE[mode]);
    this.object.mapUpdate('vigil_policies', u32Key(policy.index), state.buf);
  }

  private attach(loaded: LoadedHook): void {
    const { hook, id } = loaded;
    const target = hook.attach;
    switch (target.kind) {
      case 'syscall':
        loaded.links.push(this.object.attachTracepoint(HOOK_PROGRAMS.sysEnter, 'syscalls', `sys_enter_${target.syscall}`, id));
        if (hook.atExit) loaded.links.push(this.object.attachTracepoint(HOOK_PROGRAMS.sysExit, 'syscalls', `sys_exit_${target.syscall}`, id));
        break;
      case 'tracepoint':
        loaded.links.push(this.object.attachTracepoint(HOOK_PROGRAMS.tracepoint, target.subsystem, target.event, id));
        break;
      case 'uprobe':
        loaded.links.push(this.object.attachUprobe(target.return ? HOOK_PROGRAMS.uretprobe : HOOK_PROGRAMS.uprobe, target.path, target.symbol, { retprobe: target.return, cookie: id }));
        break;
    }
  }

  /** Detaches and clears everything a (possibly half-loaded) policy wrote. */
  private release(policy: LoadedPolicy): void {
    for (const { id, links } of policy.hooks) {
      for (const link of links) this.object.detach(link);
      this.object.mapUpdate('vigil_hooks', u32Key(id), Buffer.alloc(this.hookSize));
      this.hooksById.delete(id);
      this.freeHooks.push(id);
    }
    for (const s of policy.strings) this.object.mapDelete(s.map, s.key);
    for (const slot of policy.followSlots) {
      this.object.mapUpdate('vigil_follow_slots', u32Key(slot), Buffer.alloc(this.followSize));
      this.freeFollowSlots.push(slot);
    }
    this.object.mapUpdate('vigil_policies', u32Key(policy.index), Buffer.alloc(this.stateLayout.size));
    this.freePolicies.push(policy.index);
    this.policies.delete(policy.program.name);
  }
}
