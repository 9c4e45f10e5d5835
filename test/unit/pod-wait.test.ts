import test from 'node:test';
import assert from 'node:assert/strict';
import type { EventType, GetEventsResponse, Pod, Process } from '../../services/lib/event-model.js';
import type { LatePod } from '../../services/sensor/process-cache.js';
import { PodWait } from '../../services/sensor/pod-wait.js';

/** A container whose metadata the test answers by hand. */
class FakeContainer {
  answered = false;
  pod?: Pod;
  constructor(readonly docker: string) {}
  late(): LatePod {
    return { settled: () => this.answered, pod: () => this.pod };
  }
}

function harness(opts: { maxWaitMs?: number; maxEvents?: number } = {}) {
  const lates = new Map<Process, LatePod>();
  const published: { type: EventType; event: GetEventsResponse }[] = [];
  const wait = new PodWait((p) => lates.get(p), (type, event) => published.push({ type, event }), opts);
  let n = 0;
  const exec = (container?: FakeContainer, awaiting = true): GetEventsResponse => {
    const process = { exec_id: `id-${n++}`, ...(container && { docker: container.docker }) } as Process;
    if (container && awaiting) lates.set(process, container.late());
    return { node_name: 'n', time: { seconds: 0, nanos: 0 }, process_exec: { process } };
  };
  return { wait, published, exec, ids: () => published.map((p) => p.event.process_exec!.process.exec_id) };
}

const POD: Pod = { namespace: 'default', name: 'web-1' };

test('pod wait: host events go out at once; a new container\'s events wait, in order, and get their pod when it comes', () => {
  const h = harness();
  const c = new FakeContainer('c1');
  h.wait.submit('process_exec', h.exec());
  h.wait.submit('process_exec', h.exec(c));
  h.wait.submit('process_exec', h.exec(c, false)); // no late pod of its own, but queued behind the first
  h.wait.submit('process_exec', h.exec());
  assert.deepEqual(h.ids(), ['id-0', 'id-3']);
  assert.equal(h.wait.stats().waiting, 2);

  h.wait.recheck();
  assert.equal(h.published.length, 2, 'nothing released before the metadata source answers');
  c.answered = true;
  c.pod = POD;
  h.wait.recheck();
  assert.deepEqual(h.ids(), ['id-0', 'id-3', 'id-1', 'id-2']);
  assert.deepEqual(h.published[2]!.event.process_exec!.process.pod, POD);
  assert.deepEqual(h.wait.stats(), { held: 2, waiting: 0, releasedWithoutPod: 0 });
});

test('pod wait: a container that turns out to have no pod is released as it is, and not counted as late', () => {
  const h = harness();
  const c = new FakeContainer('c2');
  h.wait.submit('process_exec', h.exec(c));
  c.answered = true;
  h.wait.recheck();
  assert.equal(h.published.length, 1);
  assert.equal(h.published[0]!.event.process_exec!.process.pod, undefined);
  assert.equal(h.wait.stats().releasedWithoutPod, 0);
});

test('pod wait: bounded in time — past maxWaitMs the events go out without their pod, counted', async () => {
  const h = harness({ maxWaitMs: 30 });
  const c = new FakeContainer('c3');
  h.wait.submit('process_exec', h.exec(c));
  h.wait.submit('process_exec', h.exec(c));
  assert.equal(h.published.length, 0);
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(h.published.length, 2);
  assert.equal(h.wait.stats().releasedWithoutPod, 2);
});

test('pod wait: bounded in count — past maxEvents the oldest container\'s queue goes out', () => {
  const h = harness({ maxEvents: 2 });
  const [a, b] = [new FakeContainer('a'), new FakeContainer('b')];
  h.wait.submit('process_exec', h.exec(a));
  h.wait.submit('process_exec', h.exec(b));
  assert.equal(h.published.length, 0);
  h.wait.submit('process_exec', h.exec(b));
  assert.deepEqual(h.ids(), ['id-0'], "a's queue, the oldest, is released");
  assert.deepEqual(h.wait.stats(), { held: 3, waiting: 2, releasedWithoutPod: 1 });
  h.wait.close();
  assert.equal(h.published.length, 3, 'close releases the rest');
});
