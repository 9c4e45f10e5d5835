/**
 * The sensor's control API, as the enforcer sees it: the only way policy
 * state reaches the kernel. In `vigil agent` it is a direct call into the
 * sensor; in the split shape it is served over gRPC (proto/vigil/v1).
 *
 * Every call is all or nothing: when loadPolicy throws, nothing of the policy
 * is attached or written, and what was loaded before keeps working.
 */
import type { PolicyMode, PolicyProgram } from './policy-program.js';

/** Counters the kernel keeps for a loaded policy. */
export interface PolicyKernelStats {
  /** Selector matches (events posted or actions taken). */
  matched: number;
  /** Sigkill/Signal actions sent (enforce mode). */
  actionsApplied: number;
  /** Sigkill/Signal actions reported but not sent (monitor mode). */
  actionsMonitored: number;
  /** Events suppressed by a rateLimit. */
  rateLimited: number;
}

/** A policy the kernel cannot serve: `reason` names the missing feature or the bad part. */
export class PolicyLoadError extends Error {
  constructor(readonly policy: string, readonly reason: string, options?: { cause?: unknown }) {
    super(`policy ${policy}: ${reason}`, options);
    this.name = 'PolicyLoadError';
  }
}

export interface SensorPolicyControl {
  /** Attaches the policy's hooks and writes its tables. Throws PolicyLoadError. */
  loadPolicy(program: PolicyProgram): Promise<void>;
  /** Detaches and clears everything of the policy; unknown names are an error. */
  unloadPolicy(name: string): Promise<void>;
  /** Switches enforce/monitor by rewriting a table entry, never reloading programs. */
  setPolicyMode(name: string, mode: PolicyMode): Promise<void>;
  /** A disabled policy stays attached but its hooks return at once. */
  setPolicyEnabled(name: string, enabled: boolean): Promise<void>;
  policyStats(name: string): PolicyKernelStats;
}
