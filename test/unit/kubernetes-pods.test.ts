/**
 * KubernetesPods (services/sensor/containers/kubernetes.ts) against a MOCK
 * Kubernetes API server: a small node:http server that answers the pod list
 * and the chunked pod watch of /api/v1/pods the way kube-apiserver does.
 *
 * A mock, because no Kubernetes API server can run on this machine (no
 * kube-apiserver or etcd package, no image registry to pull one from); the
 * containerd side of pod metadata is tested against a real containerd in
 * test/e2e/containerd.test.ts.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { KubernetesPods, type PodContainerInfo } from '../../services/sensor/containers/kubernetes.js';
import { waitFor } from '../support/wait.js';

interface MockContainer { name: string; image: string; id?: string; startedAt?: string }

interface MockPod {
  metadata: { name: string; namespace: string; uid: string; labels: Record<string, string>; resourceVersion: string };
  spec: { nodeName: string; containers: { name: string; image: string }[] };
  status: { phase: string; containerStatuses: object[] };
}

/** The part of kube-apiserver that a pod informer uses. */
class MockApiServer {
  readonly requests: URL[] = [];
  private readonly pods = new Map<string, MockPod>();
  private readonly watches = new Set<{ node: string; res: http.ServerResponse }>();
  private resourceVersion = 100;
  /** HTTP statuses with which the next watch requests fail, in order. */
  readonly failWatches: number[] = [];
  private readonly server = http.createServer((req, res) => this.handle(req, res));

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  close(): Promise<void> {
    this.endWatches();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  watchRequests(): URL[] {
    return this.requests.filter((u) => u.searchParams.get('watch') === 'true');
  }

  /** Stores a pod without telling watchers (the state before the client lists). */
  put(pod: MockPod): MockPod {
    pod.metadata.resourceVersion = String(++this.resourceVersion);
    this.pods.set(pod.metadata.uid, pod);
    return pod;
  }

  /** Stores or deletes a pod and streams the event to the watches of its node, split over two chunks. */
  emit(type: 'ADDED' | 'MODIFIED' | 'DELETED', pod: MockPod): void {
    this.put(pod);
    if (type === 'DELETED') this.pods.delete(pod.metadata.uid);
    const line = `${JSON.stringify({ type, object: pod })}\n`;
    for (const w of this.watches) {
      if (w.node !== pod.spec.nodeName) continue;
      w.res.write(line.slice(0, 10));
      w.res.write(line.slice(10));
    }
  }

  /** Deletes a pod without telling any watch (what a client misses while disconnected). */
  deleteQuietly(uid: string): void {
    this.pods.delete(uid);
    ++this.resourceVersion;
  }

  /** Ends every watch, as the API server does when a watch times out. */
  endWatches(): void {
    for (const w of this.watches) w.res.end();
    this.watches.clear();
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://mock');
    this.requests.push(url);
    if (req.method !== 'GET' || url.pathname !== '/api/v1/pods') {
      res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"kind":"Status","code":404}');
      return;
    }
    // Only the selector the sensor must send is understood; anything else is a client bug.
    const node = /^spec\.nodeName=(.+)$/.exec(url.searchParams.get('fieldSelector') ?? '')?.[1];
    if (node === undefined) {
      res.writeHead(400, { 'Content-Type': 'application/json' }).end('{"kind":"Status","code":400}');
      return;
    }
    if (url.searchParams.get('watch') === 'true') {
      const fail = this.failWatches.shift();
      if (fail !== undefined) {
        res.writeHead(fail, { 'Content-Type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: fail }));
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
      res.flushHeaders();
      const w = { node, res };
      this.watches.add(w);
      res.on('close', () => this.watches.delete(w));
      return;
    }
    const items = [...this.pods.values()].filter((p) => p.spec.nodeName === node);
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: String(this.resourceVersion) }, items }));
  }
}

function mockPod(name: string, uid: string, nodeName: string, labels: Record<string, string>, containers: MockContainer[]): MockPod {
  return {
    metadata: { name, namespace: 'default', uid, labels, resourceVersion: '' },
    spec: { nodeName, containers: containers.map((c) => ({ name: c.name, image: c.image })) },
    status: {
      phase: containers.every((c) => c.id) ? 'Running' : 'Pending',
      containerStatuses: containers.map((c) => ({
        name: c.name,
        image: c.image,
        imageID: '',
        ready: c.id !== undefined,
        restartCount: 0,
        ...(c.id !== undefined && { containerID: `containerd://${c.id}` }),
        state: c.startedAt !== undefined ? { running: { startedAt: c.startedAt } } : { waiting: { reason: 'ContainerCreating' } },
      })),
    },
  };
}

function writeKubeconfig(server: string): { file: string; dir: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-kubeconfig-'));
  const file = path.join(dir, 'config');
  fs.writeFileSync(file, [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: mock',
    '  cluster:',
    `    server: ${server}`,
    // client-node speaks plain HTTP only with this set.
    '    insecure-skip-tls-verify: true',
    'users:',
    '- name: mock',
    '  user: {}',
    'contexts:',
    '- name: mock',
    '  context: {cluster: mock, user: mock}',
    'current-context: mock',
    '',
  ].join('\n'));
  return { file, dir };
}

const hex = (c: string): string => c.repeat(64);

test('KubernetesPods is off outside a cluster and without a kubeconfig', async () => {
  const saved = { host: process.env.KUBERNETES_SERVICE_HOST, config: process.env.KUBECONFIG };
  delete process.env.KUBERNETES_SERVICE_HOST;
  delete process.env.KUBECONFIG;
  try {
    assert.equal(KubernetesPods.enabled(), false);
    assert.equal(await KubernetesPods.start({ nodeName: 'node-a' }), undefined);
    assert.equal(KubernetesPods.enabled({ kubeconfig: '/some/kubeconfig' }), true);
  } finally {
    if (saved.host !== undefined) process.env.KUBERNETES_SERVICE_HOST = saved.host;
    if (saved.config !== undefined) process.env.KUBECONFIG = saved.config;
  }
});

test('KubernetesPods fails to start when the API server refuses', async (t) => {
  const { file, dir } = writeKubeconfig('http://127.0.0.1:1');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  await assert.rejects(KubernetesPods.start({ kubeconfig: file, nodeName: 'node-a' }), /Kubernetes API \(http:\/\/127\.0\.0\.1:1\)/);
});

test('KubernetesPods lists, then follows ADDED/MODIFIED/DELETED of this node\'s pods', async (t) => {
  const api = new MockApiServer();
  const server = await api.listen();
  const { file, dir } = writeKubeconfig(server);
  t.after(async () => {
    await api.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  api.put(mockPod('nginx-priv', 'uid-nginx', 'node-a', { app: 'nginx' }, [
    { name: 'nginx', image: 'docker.io/library/nginx:1.25', id: hex('a'), startedAt: '2026-11-30T10:00:00Z' },
  ]));
  api.put(mockPod('elsewhere', 'uid-else', 'node-b', { app: 'other' }, [{ name: 'c', image: 'busybox', id: hex('b'), startedAt: '2026-11-30T10:00:00Z' }]));

  const pods = await KubernetesPods.start({ kubeconfig: file, nodeName: 'node-a' });
  assert.ok(pods);
  t.after(() => pods.close());
  const changes: [string, PodContainerInfo | undefined][] = [];
  pods.onChange((id, info) => changes.push([id, info]));

  // The list: only this node's pods were asked for.
  const list = api.requests.find((u) => u.searchParams.get('watch') === null);
  assert.equal(list?.searchParams.get('fieldSelector'), 'spec.nodeName=node-a');
  assert.deepEqual(pods.lookupContainer(hex('a')), {
    namespace: 'default', podName: 'nginx-priv', podLabels: { app: 'nginx' }, podUid: 'uid-nginx',
    containerName: 'nginx', image: 'docker.io/library/nginx:1.25', startedAt: new Date('2026-11-30T10:00:00Z'),
  });
  assert.equal(pods.lookupContainer(hex('b')), undefined, 'a pod of another node');

  // The watch continues from the list's resourceVersion, with the same selector.
  const watch = await waitFor('the watch request', () => api.watchRequests()[0]);
  assert.equal(watch.searchParams.get('fieldSelector'), 'spec.nodeName=node-a');
  assert.equal(watch.searchParams.get('resourceVersion'), '102');

  // ADDED while the container is being created: the pod is known, its container not yet.
  api.emit('ADDED', mockPod('web-1', 'uid-web', 'node-a', { app: 'web' }, [{ name: 'web', image: 'docker.io/library/httpd:2' }]));
  await waitFor('the added pod', () => pods.lookupPod('uid-web'));
  assert.deepEqual(pods.lookupPod('uid-web'), { namespace: 'default', podName: 'web-1', podLabels: { app: 'web' }, podUid: 'uid-web' });
  assert.equal(changes.length, 0, 'no container has an id yet');

  // MODIFIED: the kubelet reports the container's id, and the pod's labels change.
  api.emit('MODIFIED', mockPod('web-1', 'uid-web', 'node-a', { app: 'web', tier: 'front' }, [
    { name: 'web', image: 'docker.io/library/httpd:2', id: hex('c'), startedAt: '2026-11-30T10:05:00Z' },
  ]));
  const web = await waitFor('the modified pod\'s container', () => pods.lookupContainer(hex('c')));
  assert.deepEqual(web.podLabels, { app: 'web', tier: 'front' });
  assert.equal(web.containerName, 'web');
  assert.deepEqual(web.startedAt, new Date('2026-11-30T10:05:00Z'));
  assert.deepEqual(changes, [[hex('c'), web]]);

  // DELETED: the container is gone.
  api.emit('DELETED', mockPod('web-1', 'uid-web', 'node-a', { app: 'web', tier: 'front' }, [
    { name: 'web', image: 'docker.io/library/httpd:2', id: hex('c'), startedAt: '2026-11-30T10:05:00Z' },
  ]));
  await waitFor('the deletion', () => (pods.lookupContainer(hex('c')) === undefined ? true : undefined));
  assert.equal(pods.lookupPod('uid-web'), undefined);
  assert.deepEqual(changes.at(-1), [hex('c'), undefined]);

  // The API server ends the watch (its timeout): the client watches again from where it was.
  api.endWatches();
  const rewatch = await waitFor('a new watch', () => api.watchRequests()[1]);
  assert.equal(rewatch.searchParams.get('resourceVersion'), '105', 'the DELETED event\'s version');
  assert.equal(api.requests.filter((u) => u.searchParams.get('watch') === null).length, 1, 'no second list');
  assert.equal(rewatch.searchParams.get('fieldSelector'), 'spec.nodeName=node-a');
  api.emit('ADDED', mockPod('web-2', 'uid-web-2', 'node-a', { app: 'web' }, [
    { name: 'web', image: 'docker.io/library/httpd:2', id: hex('e'), startedAt: '2026-11-30T10:06:00Z' },
  ]));
  const web2 = await waitFor('a pod added after the re-watch', () => pods.lookupContainer(hex('e')));
  assert.equal(web2.podName, 'web-2');
  assert.equal(pods.lookupContainer(hex('a'))?.podName, 'nginx-priv', 'the listed pod is still there');
});

test('KubernetesPods retries a failed watch and re-lists when its version expired (410)', async (t) => {
  const api = new MockApiServer();
  const { file, dir } = writeKubeconfig(await api.listen());
  t.after(async () => {
    await api.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  api.put(mockPod('a', 'uid-a', 'node-a', {}, [{ name: 'a', image: 'busybox', id: hex('a'), startedAt: '2026-11-30T10:00:00Z' }]));
  api.put(mockPod('b', 'uid-b', 'node-a', {}, [{ name: 'b', image: 'busybox', id: hex('b'), startedAt: '2026-11-30T10:00:00Z' }]));
  const logs: string[] = [];
  const pods = await KubernetesPods.start({ kubeconfig: file, nodeName: 'node-a', retryMs: 50, log: (line) => logs.push(line) });
  assert.ok(pods);
  t.after(() => pods.close());
  await waitFor('the watch', () => api.watchRequests()[0]);
  const gone: string[] = [];
  pods.onChange((id, info) => { if (info === undefined) gone.push(id); });

  // The watch breaks; the next attempt gets a server error (retried after retryMs), the one after
  // that 410 Gone: the client lists afresh and notices what was deleted meanwhile.
  api.failWatches.push(500, 410);
  api.deleteQuietly('uid-b');
  api.endWatches();
  await waitFor('a second list', () => api.requests.filter((u) => u.searchParams.get('watch') === null)[1]);
  await waitFor('the watch after the re-list', () => api.watchRequests()[3]);
  assert.equal(pods.lookupContainer(hex('b')), undefined);
  assert.deepEqual(gone, [hex('b')]);
  assert.equal(pods.lookupContainer(hex('a'))?.podName, 'a');
  assert.ok(logs.some((line) => /retrying in 50 ms/.test(line)), logs.join('\n'));
});
