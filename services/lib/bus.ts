/**
 * The bus: how services meet. An event travels as an envelope holding the
 * decoded object and its protobuf bytes (tetragon.GetEventsResponse), encoded
 * once by the sensor; every consumer reuses the same bytes.
 *
 * `LocalBus` is the in-process shape used by `vigil agent`. Handlers run
 * synchronously in publish order and must not block; a handler that throws is
 * reported through `onHandlerError` and does not stop delivery to the others.
 */
import type { EventType, GetEventsResponse } from './event-model.js';

export interface EventEnvelope {
  readonly type: EventType;
  readonly event: GetEventsResponse;
  readonly bytes: Uint8Array;
}

export type EventHandler = (envelope: EventEnvelope) => void;

export interface Bus {
  publishEvent(envelope: EventEnvelope): void;
  /** Returns the function that unsubscribes. */
  subscribeEvents(handler: EventHandler): () => void;
}

export class LocalBus implements Bus {
  private readonly handlers = new Set<EventHandler>();

  constructor(private readonly onHandlerError: (err: unknown) => void = (err) => { console.error('bus handler failed:', err); }) {}

  publishEvent(envelope: EventEnvelope): void {
    for (const handler of this.handlers) {
      try {
        handler(envelope);
      } catch (err) {
        this.onHandlerError(err);
      }
    }
  }

  subscribeEvents(handler: EventHandler): () => void {
    this.handlers.add(handler);
    return () => { this.handlers.delete(handler); };
  }
}
