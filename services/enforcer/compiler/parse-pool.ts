/**
 * Policy texts are parsed and validated off the event loop: in one worker
 * thread (parse-worker.ts), one text at a time, each within
 * PARSE_WORKER_LIMITS (time and heap). A text that takes longer, or needs
 * more memory, is refused with a PolicyError and the worker is replaced; the
 * agent's event loop goes on serving events meanwhile. Compiling against the
 * kernel (CompileEnv) stays on the calling thread, on the bounded result.
 *
 * The worker is started on first use, kept while texts come (unref'd, so it
 * never holds the process open while idle) and ended after IDLE_MS idle.
 */
import { Worker } from 'node:worker_threads';
import type { PolicyProgram } from '../../lib/policy-program.js';
import { compileDocuments } from './compile.js';
import type { CompileEnv } from './env.js';
import { PolicyError } from './errors.js';
import { adoptDocument, checkPolicyTextSize, type TracingPolicyDocument } from './parse.js';
import type { ParseReply, ParseRequest } from './parse-worker.js';

/** How long one text may take to parse and validate, and the worker's heap. Tests may lower them. */
export const PARSE_WORKER_LIMITS = {
  timeMs: 2000,
  /** V8 old-generation heap of the worker, MiB: a text past it is refused, not the agent's memory. */
  heapMb: 256,
  /** How long the worker may take to start (load yaml and the schema) before a parse fails. */
  startMs: 15_000,
};

const IDLE_MS = 30_000;

interface Job {
  id: number;
  text: string;
  source: string | undefined;
  resolve: (documents: TracingPolicyDocument[]) => void;
  reject: (err: unknown) => void;
}

function sourceOpt(source: string | undefined): { source?: string } {
  return source === undefined ? {} : { source };
}

class ParsePool {
  private worker: Worker | undefined;
  private ready = false;
  private readonly queue: Job[] = [];
  private current: Job | undefined;
  private timer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private nextId = 1;

  parse(text: string, source: string | undefined): Promise<TracingPolicyDocument[]> {
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, text, source, resolve, reject });
      this.pump();
    });
  }

  /** Ends the worker (tests; the worker never holds the process open anyway). */
  async close(): Promise<void> {
    const worker = this.worker;
    this.discard();
    await worker?.terminate();
  }

  private pump(): void {
    if (this.current !== undefined || this.queue.length === 0) return;
    clearTimeout(this.idleTimer);
    const worker = this.worker ?? this.start();
    worker.ref();
    if (!this.ready) return; // dispatched when the worker says it is ready
    const job = this.queue.shift()!;
    this.current = job;
    this.timer = setTimeout(() => this.fail(new PolicyError('', `policy text took longer than ${PARSE_WORKER_LIMITS.timeMs} ms to parse and validate`, sourceOpt(job.source))), PARSE_WORKER_LIMITS.timeMs);
    const request: ParseRequest = { id: job.id, text: job.text, ...sourceOpt(job.source) };
    worker.postMessage(request);
  }

  private start(): Worker {
    const worker = new Worker(new URL('./parse-worker.js', import.meta.url), {
      resourceLimits: { maxOldGenerationSizeMb: PARSE_WORKER_LIMITS.heapMb, maxYoungGenerationSizeMb: 32 },
    });
    this.worker = worker;
    this.ready = false;
    this.timer = setTimeout(() => this.fail(new Error(`the policy parser thread did not start within ${PARSE_WORKER_LIMITS.startMs} ms`)), PARSE_WORKER_LIMITS.startMs);
    worker.on('message', (message: ParseReply | { ready: true }) => {
      if (worker !== this.worker) return;
      if ('ready' in message) {
        clearTimeout(this.timer);
        this.ready = true;
        this.pump();
        return;
      }
      const job = this.current;
      if (job === undefined || job.id !== message.id) return;
      clearTimeout(this.timer);
      this.current = undefined;
      if (message.ok) job.resolve(message.documents.map((parsed) => adoptDocument(parsed, job.source)));
      else job.reject(new PolicyError(message.error.path, message.error.reason, message.error));
      this.idle();
    });
    worker.on('error', (err: Error & { code?: string }) => {
      if (worker !== this.worker) return;
      const source = this.current?.source;
      this.fail(err.code === 'ERR_WORKER_OUT_OF_MEMORY'
        ? new PolicyError('', `policy text needs more than ${PARSE_WORKER_LIMITS.heapMb} MiB to parse`, sourceOpt(source))
        : new Error(`the policy parser thread failed: ${err.message}`));
    });
    worker.on('exit', (code) => {
      if (worker !== this.worker) return;
      this.fail(new Error(`the policy parser thread exited (code ${code})`));
    });
    return worker;
  }

  /** Refuses the current job (or, while starting, every queued one) with `err`, ends the worker; the next job starts a new one. */
  private fail(err: unknown): void {
    const worker = this.worker;
    const victims = this.current !== undefined ? [this.current] : this.ready ? [] : this.queue.splice(0);
    this.discard();
    void worker?.terminate();
    for (const job of victims) job.reject(err);
    this.pump();
  }

  private discard(): void {
    clearTimeout(this.timer);
    clearTimeout(this.idleTimer);
    this.worker = undefined;
    this.ready = false;
    this.current = undefined;
  }

  private idle(): void {
    if (this.queue.length > 0) {
      this.pump();
      return;
    }
    this.worker?.unref();
    this.idleTimer = setTimeout(() => void this.close(), IDLE_MS);
    this.idleTimer.unref();
  }
}

const pool = new ParsePool();

/**
 * parsePolicyDocuments in the worker: the documents, with their lines known
 * to policyErrorAt; rejects with PolicyError for a text past POLICY_LIMITS,
 * PARSE_WORKER_LIMITS, or that does not parse or validate.
 */
export async function parsePolicyDocumentsOffThread(text: string, source?: string): Promise<TracingPolicyDocument[]> {
  checkPolicyTextSize(text, source); // before copying the text to the worker
  return pool.parse(text, source);
}

/** loadPolicyText with the parsing off the event loop; compiling (against env) on this thread. */
export async function loadPolicyTextOffThread(text: string, env: CompileEnv, source?: string): Promise<{ document: TracingPolicyDocument; program: PolicyProgram }[]> {
  return compileDocuments(await parsePolicyDocumentsOffThread(text, source), env);
}

/** Ends the parser thread (tests). */
export function closeParseWorker(): Promise<void> {
  return pool.close();
}
