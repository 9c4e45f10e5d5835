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
import type { AuditRecord, Bus, EventEnvelope } from '../lib/bus.js';
import type { PolicyProgram } from '../lib/policy-program.js';

/** tetragon.KprobeAction SIGKILL. */
const KPROBE_ACTION_SIGKILL = 3;
const MAX_TRACKED = 65536;

interface PolicyPayload { policy_name?: string; action?: number; tags?: string[]; process?: { pid?: { value: number }; exec_id?: string } }

/** Live processes by exec_id, with their children, from exec and exit events. */
export class Lineage {
  private readonly pids = new Map<string, number>();
  private readonly children = new Map<string, Set<string>>();

  onExec(execId: string, pid: number, parentExecId: string): void {
    if (this.pids.size >= MAX_TRACKED) this.pids.delete(this.pids.keys().next().value!);
    this.pids.set(execId, pid);
    if (parentExecId) {
      if (this.children.size >= MAX_TRACKED) this.children.delete(this.children.keys().next().value!);
      const set = this.children.get(parentExecId) ?? new Set();
      set.add(execId);
      this.children.set(parentExecId, set);
    }
  }

  /** An exited process is no target; its children links stay, so grandchildren can still be reached. */
  onExit(execId: string): void {
    this.pids.delete(execId);
  }

  /** Pids of the live descendants of a process, nearest first. */
  descendants(execId: string): number[] {
    const out: number[] = [];
    for (let queue = [execId]; queue.length > 0;) {
      const next: string[] = [];
      for (const id of queue) {
        for (const child of this.children.get(id) ?? []) {
          const pid = this.pids.get(child);
          if (pid !== undefined) out.push(pid);
          next.push(child);
        }
      }
      queue = next;
    }
    return out;
  }
}

/** How long descendants of a killed process are still looked for: a child forked just before the kill may exec after it. */
const DOOMED_MS = 5000;

export class FollowUpActions {
  private readonly unsubscribe: () => void;
  private readonly lineage = new Lineage();
  /** Killed trees by exec_id: late execs of their children are killed as they appear. */
  private readonly doomed = new Map<string, { policy: string; trigger: string; until: number }>();

  constructor(
    private readonly bus: Bus,
    private readonly node: string,
    private readonly programOf: (policy: string) => PolicyProgram | undefined,
    /** Whether any loaded policy asks for a follow-up: without one, policy events are not even decoded. */
    private readonly anyFollowUp: () => boolean = () => true,
  ) {
    this.unsubscribe = bus.subscribeEvents((e) => this.onEvent(e));
  }

  close(): void {
    this.unsubscribe();
  }

  private onEvent(envelope: EventEnvelope): void {
    const lifecycle = envelope.type === 'process_exec' || envelope.type === 'process_exit';
    if (!lifecycle && !this.anyFollowUp()) return;
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
    if (this.programOf(payload.policy_name)?.followUp !== 'kill-process-tree') return;
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
