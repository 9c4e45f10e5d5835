/**
 * The worker thread of parse-pool.ts: parses and validates policy texts
 * (parsePolicyDocumentsTransferable) off the agent's event loop and sends
 * back each document with its line index, or the PolicyError.
 */
import { parentPort } from 'node:worker_threads';
import { PolicyError } from './errors.js';
import { parsePolicyDocumentsTransferable } from './parse.js';

export interface ParseRequest {
  id: number;
  text: string;
  source?: string;
}

export type ParseReply =
  | { id: number; ok: true; documents: ReturnType<typeof parsePolicyDocumentsTransferable> }
  | { id: number; ok: false; error: { path: string; reason: string; line?: number; source?: string } };

const port = parentPort;
if (port !== null) {
  port.on('message', ({ id, text, source }: ParseRequest) => {
    let reply: ParseReply;
    try {
      reply = { id, ok: true, documents: parsePolicyDocumentsTransferable(text, source) };
    } catch (err) {
      // Whatever the text made the parser throw is the text's fault (INVALID_ARGUMENT), named as such.
      const e = err instanceof PolicyError ? err : new PolicyError('', `invalid YAML: ${err instanceof Error ? err.message : String(err)}`);
      reply = {
        id, ok: false,
        error: { path: e.path, reason: e.reason, ...(e.line === undefined ? {} : { line: e.line }), ...(e.source === undefined ? {} : { source: e.source }) },
      };
    }
    port.postMessage(reply);
  });
  port.postMessage({ ready: true });
}
