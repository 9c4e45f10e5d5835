/**
 * The status summary of TracingPolicy objects (services/enforcer/policy-crds.ts);
 * the watch itself runs against a real kube-apiserver in test/e2e/kubernetes.test.ts.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { summarizeStatus, type NodePolicyStatus } from '../../services/enforcer/policy-crds.js';

const at = '2026-12-07T00:00:00.000Z';
const enabled = (generation: number): NodePolicyStatus => ({ state: 'enabled', observedGeneration: generation, loadedGeneration: generation, updated: at });

test('the status summary is enabled when every node is, else names the first failing node (by name) and its message', () => {
  assert.deepEqual(summarizeStatus({ a: enabled(1), b: enabled(1) }), { state: 'enabled', nodes: { a: enabled(1), b: enabled(1) } });
  const failing: NodePolicyStatus = { state: 'error', message: 'spec.kprobes[0].call: no such function', observedGeneration: 2, loadedGeneration: 1, updated: at };
  const nodes = { c: failing, a: enabled(2), b: { ...failing, message: 'sensor refused' } };
  const summary = summarizeStatus(nodes);
  assert.equal(summary.state, 'error');
  assert.equal(summary.message, 'b: sensor refused');
  assert.equal(summary.nodes, nodes);
  // No empty message: the API client would send it as null, which the CRD's schema refuses.
  assert.equal('message' in summarizeStatus({ a: enabled(1) }), false);
});
