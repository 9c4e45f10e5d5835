/** The NATS JetStream shape of the bus, and cluster-wide policies in NATS KV. */
export { MAX_BATCH_BYTES, MAX_BATCH_EVENTS, NatsBus, type NatsBusOptions, type NatsBusStats } from './nats-bus.js';
export { MalformedBatchError, decodeEventBatch, encodeEventBatch } from './event-batch.js';
export { DEFAULT_CONSUMER_OPTIONS, FETCH_EXPIRES_MS, type DurableConsumerOptions } from './consumer.js';
export { POLICY_BUCKET, PolicyKv, policyKey, type PolicyChange, type PolicyWatch } from './kv.js';
export {
  AUDIT_STREAM, AUDIT_SUBJECTS, DEFAULT_STREAM_LIMITS, EVENT_STREAM, EVENT_SUBJECTS, STATS_SUBJECTS, EventMsgIds,
  auditSubject, eventSubject, statsSubject, subjectToken, type StreamLimits,
} from './stream.js';
