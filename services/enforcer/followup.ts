/**
 * User-space follow-up actions: after the kernel has killed a process for a
 * policy whose option `followup-action` is `kill-process-tree`, the enforcer
 * kills that process's descendants still running (the kernel's kill stops
 * only the offender). Every action taken is published as an audit record.
 *
 * The offender is dead by the time its event arrives, so its children have
 * been re-parented and /proc no longer links them to it: descendants are
 * followed instead from the events themselves (parent_exec_id of each exec,
 * forgotten at exit), a bounded index of live processes of this node; and a
 * child forked just before the kill that execs after it is killed when its
 * exec arrives (for a few seconds after the kill). A child that was forked but
 * never exec'd has no event, so it is not found.
 */
import { remember } from '../lib/bounded-map.js';
import type { AuditRecord, Bus, EventEnvelope } from '../lib/bus.js';
import type { EventType } from '../lib/event-model.js';
import type { PolicyProgram } from '../lib/policy-program.js';

/** tetragon.KprobeAction SIGKILL. */
const KPROBE_ACTION_SIGKILL = 3;

interface PolicyPayload { policy_name?: string; action?: number; tags?: string[]; process?: { pid?: { value: number }; exec_id?: string } }

/**
 * Live processes by exec_id, with their children, from exec and exit events.
 * Execs and exits may come in either order (on NATS they are two
 * consumers): an exit remembered before its exec keeps that process from
 * ever counting as live, so its pid, perhaps reused by then, is never a target.
 *
 * A process is linked to its parent while it is live or has linked children:
 * an exited one still leads to its live descendants, and one that leads to
 * none is unlinked at once, so a long-lived parent of many short-lived
 * children (a shell loop, a container runtime) holds only its live ones. The
 * parents of unlinked processes are remembered (the latest MAX_TRACKED): a
 * child forked before its parent exited that execs later links it again.
 * Exited processes kept for their descendants are bounded too (the latest
 * MAX_TRACKED): a process that forks and exits over and over ("pid hopping")
 * leaves a chain whose oldest links are dropped, so its live end is no longer
 * found from the chain's first ancestors.
 */
export class Lineage {
  private readonly pids = new Map<string, number>();
  /** The parent of each linked process. */
  private readonly linkedTo = new Map<string, string>();
  private readonly children = new Map<string, Set<string>>();
  /** The parents of processes unlinked, or never linked because their exit came first. */
  private readonly unlinkedParents = new Map<string, string>();
  /** exec_ids whose exit came before their exec. */
  private readonly exitedEarly = new Map<string, true>();
  /** Exited processes kept because they lead to live descendants. */
  private readonly exitedAncestors = new Map<string, true>();

  onExec(execId: string, pid: number, parentExecId: string): void {
    if (this.exitedEarly.delete(execId)) {
      if (parentExecId) remember(this.unlinkedParents, execId, parentExecId);
      return;
    }
    const evicted = remember(this.pids, execId, pid);
    if (evicted !== undefined) this.forget(evicted);
    if (parentExecId) this.link(execId, parentExecId);
  }

  /** An exited process is no target; it stays linked while it leads to live descendants. */
  onExit(execId: string): void {
    if (this.pids.delete(execId)) {
      this.forget(execId);
      return;
    }
    remember(this.exitedEarly, execId, true);
  }

  /** Pids of the live descendants of a process, nearest first. */
  descendants(execId: string): number[] {
    const out: number[] = [];
    const seen = new Set([execId]); // parent links from the bus are not trusted to form no cycle
    for (let queue = [execId]; queue.length > 0;) {
      const next: string[] = [];
      for (const id of queue) {
        for (const child of this.children.get(id) ?? []) {
          if (seen.has(child)) continue;
          seen.add(child);
          const pid = this.pids.get(child);
          if (pid !== undefined) out.push(pid);
          next.push(child);
        }
      }
      queue = next;
    }
    return out;
  }

  /** Processes linked: live, or leading to live descendants. */
  get links(): number {
    return this.linkedTo.size;
  }

  /** Links `execId` to `parent`, and each ancestor unlinked before to its own. */
  private link(execId: string, parent: string): void {
    const relinked: string[] = [];
    for (let child = execId, p: string | undefined = parent; p !== undefined && !this.linkedTo.has(child); child = p, p = this.unlinkedParents.get(child)) {
      this.unlinkedParents.delete(child);
      this.linkedTo.set(child, p);
      let set = this.children.get(p);
      if (set === undefined) this.children.set(p, (set = new Set()));
      set.add(child);
      if (child !== execId) relinked.push(child);
    }
    for (const ancestor of relinked) if (!this.pids.has(ancestor)) this.keepAncestor(ancestor);
  }

  /** A process no longer live: unlinked when it leads to no one, else kept for its descendants. */
  private forget(execId: string): void {
    this.unlink(execId);
    if (this.children.get(execId)?.size) this.keepAncestor(execId);
  }

  private keepAncestor(execId: string): void {
    const evicted = remember(this.exitedAncestors, execId, true);
    if (evicted !== undefined) this.drop(evicted);
  }

  /** Takes an exited ancestor out of the lineage: its descendants are no longer found through it. */
  private drop(execId: string): void {
    for (const child of this.children.get(execId) ?? []) this.linkedTo.delete(child);
    this.children.delete(execId);
    this.unlink(execId);
  }

  /** Unlinks `execId`, and each ancestor it leaves leading to no one, while they are not live. */
  private unlink(execId: string): void {
    for (let id = execId; !this.pids.has(id) && !this.children.get(id)?.size;) {
      this.children.delete(id);
      this.exitedAncestors.delete(id);
      const parent = this.linkedTo.get(id);
      if (parent === undefined) return;
      this.linkedTo.delete(id);
      remember(this.unlinkedParents, id, parent);
      const siblings = this.children.get(parent);
      siblings?.delete(id);
      if (siblings === undefined || siblings.size > 0) return;
      this.children.delete(parent);
      id = parent;
    }
  }
}

/** How long descendants of a killed process are still looked for: a child forked just before the kill may exec after it. */
const DOOMED_MS = 5000;

/** Where follow-ups are asked for: the policy store. */
export interface FollowUpSource {
  /** The loaded policy of this name, with its follow-up option. */
  program(policy: string): PolicyProgram | undefined;
  /** Whether any loaded policy asks for a follow-up. */
  hasFollowUps(): boolean;
  /** Calls the listener after the loaded policies may have changed, waiting on what it returns. */
  onChange(listener: () => Promise<void>): void;
}

/** The event types that carry a policy's action. */
const POLICY_EVENT_TYPES: readonly EventType[] = ['process_kprobe', 'process_tracepoint', 'process_uprobe'];

export class FollowUpActions {
  private readonly unsubscribeLineage: () => void;
  /** Policy events are taken only while a policy asks for a follow-up: on NATS every one of them is a message to receive. */
  private unsubscribePolicyEvents: (() => void) | undefined;
  private readonly lineage = new Lineage();
  /** Killed trees by exec_id: late execs of their children are killed as they appear. */
  private readonly doomed = new Map<string, { policy: string; trigger: string; until: number }>();

  constructor(private readonly bus: Bus, private readonly node: string, private readonly source: FollowUpSource) {
    this.unsubscribeLineage = bus.subscribeEvents((e) => this.onEvent(e), { types: ['process_exec', 'process_exit'] });
    source.onChange(() => this.followPolicyEvents());
    // Policies loaded before: a subscription that fails says so itself (consumeFromNow logs it).
    this.followPolicyEvents().catch(() => {});
  }

  close(): void {
    this.unsubscribeLineage();
    this.unsubscribePolicyEvents?.();
    this.unsubscribePolicyEvents = undefined;
  }

  /** Takes policy events while a loaded policy asks for a follow-up, from before the change's caller goes on. */
  private async followPolicyEvents(): Promise<void> {
    const wanted = this.source.hasFollowUps();
    if (wanted && this.unsubscribePolicyEvents === undefined) {
      const unsubscribe = this.bus.subscribeEvents((e) => this.onEvent(e), { types: POLICY_EVENT_TYPES });
      this.unsubscribePolicyEvents = unsubscribe;
      await unsubscribe.ready;
    } else if (!wanted && this.unsubscribePolicyEvents !== undefined) {
      this.unsubscribePolicyEvents();
      this.unsubscribePolicyEvents = undefined;
    }
  }

  private onEvent(envelope: EventEnvelope): void {
    const { event } = envelope;
    if (event.node_name !== this.node) return;
    if (event.process_exec) {
      const p = event.process_exec.process;
      this.lineage.onExec(p.exec_id, p.pid.value, p.parent_exec_id);
      const tree = this.doomed.get(p.parent_exec_id);
      if (tree && tree.until > Date.now()) {
        this.doomed.set(p.exec_id, tree);
        this.kill([p.pid.value], tree.policy, tree.trigger);
      }
      return;
    }
    if (event.process_exit) {
      this.lineage.onExit(event.process_exit.process.exec_id);
      return;
    }
    const payload = (envelope.event.process_kprobe ?? envelope.event.process_tracepoint ?? envelope.event.process_uprobe) as PolicyPayload | undefined;
    if (!payload?.policy_name || payload.action !== KPROBE_ACTION_SIGKILL || payload.tags?.includes('not-applied')) return;
    if (this.source.program(payload.policy_name)?.followUp !== 'kill-process-tree') return;
    const execId = payload.process?.exec_id;
    if (execId) this.killTree(execId, payload.policy_name);
  }

  private killTree(trigger: string, policy: string): void {
    const now = Date.now();
    for (const [id, tree] of this.doomed) if (tree.until <= now) this.doomed.delete(id);
    this.doomed.set(trigger, { policy, trigger, until: now + DOOMED_MS });
    this.kill(this.lineage.descendants(trigger), policy, trigger);
  }

  private kill(targets: number[], policy: string, trigger: string): void {
    const failures: string[] = [];
    for (const target of targets) {
      try {
        process.kill(target, 'SIGKILL');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') failures.push(`${target}: ${(err as Error).message}`);
      }
    }
    const record: AuditRecord = {
      node: this.node, time: Date.now(), action: 'kill-process-tree', policy, targets,
      outcome: failures.length === 0 ? 'done' : failures.length < targets.length ? 'partial' : 'failed',
      trigger,
      ...(failures.length > 0 && { details: failures.join('; ') }),
    };
    this.bus.publishAudit(record);
  }
}
