/**
 * The actions the sensor takes in user space when a selector with them
 * matched (the kernel posted the event): DnsLookup resolves a name and
 * GetUrl fetches a URL, as Tetragon's agent does — canaries, so that whoever
 * watches that name or URL learns the policy fired. Bounded, since a policy
 * can match at any rate: at most `maxInFlight` at once, each given up after
 * `timeoutMs`; one past the bound is dropped and counted (errors_total
 * policy_action_dropped). The answer is not read: only the asking matters.
 */
import dns from 'node:dns';
import type { Action } from '../lib/policy-program.js';

export interface PolicyActionOptions {
  /** DNS servers ("host" or "host:port") for DnsLookup; default: the system's (/etc/resolv.conf). */
  dnsServers?: string[];
  timeoutMs?: number;
  maxInFlight?: number;
}

export interface PolicyActionStats { done: number; failed: number; dropped: number }

const DEFAULT_TIMEOUT_MS = 5000;
const DEFAULT_MAX_IN_FLIGHT = 16;

export class PolicyActions {
  private readonly resolver: dns.promises.Resolver;
  private readonly timeoutMs: number;
  private readonly maxInFlight: number;
  private inFlight = 0;
  private readonly counts: PolicyActionStats = { done: 0, failed: 0, dropped: 0 };

  constructor(opts: PolicyActionOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxInFlight = opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    this.resolver = new dns.promises.Resolver({ timeout: this.timeoutMs, tries: 1 });
    if (opts.dnsServers) this.resolver.setServers(opts.dnsServers);
  }

  /** Starts the action (DnsLookup or GetUrl; others are the kernel's), unless too many are under way. */
  perform(action: Action): void {
    const task = action.action === 'DnsLookup' && action.fqdn ? () => this.resolver.resolve4(action.fqdn!)
      : action.action === 'GetUrl' && action.url ? () => this.fetch(action.url!) : undefined;
    if (task === undefined) return;
    if (this.inFlight >= this.maxInFlight) {
      this.counts.dropped++;
      return;
    }
    this.inFlight++;
    task().then(() => { this.counts.done++; }, () => { this.counts.failed++; }).finally(() => { this.inFlight--; });
  }

  stats(): PolicyActionStats {
    return { ...this.counts };
  }

  /** One GET, redirects not followed, the body left unread. */
  private async fetch(url: string): Promise<void> {
    const res = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(this.timeoutMs) });
    await res.body?.cancel();
  }
}
