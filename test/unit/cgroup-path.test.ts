/** Container ids from every cgroup layout Vigil knows. */
import test from 'node:test';
import assert from 'node:assert/strict';
import { containerOfCgroupPath } from '../../services/sensor/containers/cgroup.js';

const ID = 'f2e7cea9b7f5a1c34b2d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3';
const UID = '1b2c3d4e-5f60-4718-93a4-b5c6d7e8f9a0';

test('Kubernetes cgroupfs layout', () => {
  assert.deepEqual(containerOfCgroupPath(`/kubepods/besteffort/pod${UID}/${ID}`), { id: ID, runtime: 'containerd', podUid: UID });
  assert.deepEqual(containerOfCgroupPath(`/kubepods/pod${UID}/${ID}`), { id: ID, runtime: 'containerd', podUid: UID });
});

test('Kubernetes systemd layout, containerd and cri-o', () => {
  const slice = `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID.replace(/-/g, '_')}.slice`;
  assert.deepEqual(containerOfCgroupPath(`${slice}/cri-containerd-${ID}.scope`), { id: ID, runtime: 'containerd', podUid: UID });
  assert.deepEqual(containerOfCgroupPath(`${slice}/crio-${ID}.scope`), { id: ID, runtime: 'cri-o', podUid: UID });
});

test('docker layouts', () => {
  assert.deepEqual(containerOfCgroupPath(`/docker/${ID}`), { id: ID, runtime: 'docker' });
  assert.deepEqual(containerOfCgroupPath(`/system.slice/docker-${ID}.scope`), { id: ID, runtime: 'docker' });
});

test("containerd's own layout needs containerd to know the container", () => {
  assert.equal(containerOfCgroupPath('/k8s.io/nginx-1'), undefined);
  assert.deepEqual(containerOfCgroupPath('/k8s.io/nginx-1', (ns, id) => ns === 'k8s.io' && id === 'nginx-1'), { id: 'nginx-1', runtime: 'containerd' });
  assert.deepEqual(containerOfCgroupPath(`/default/${ID}`), { id: ID, runtime: 'containerd' });
});

test('runc systemd-driver cgroupsPath and host cgroups', () => {
  assert.deepEqual(containerOfCgroupPath(`/system.slice/runc:cri-containerd:${ID}`), { id: ID, runtime: 'containerd' });
  assert.equal(containerOfCgroupPath('/'), undefined);
  assert.equal(containerOfCgroupPath('/user.slice/session-1.scope'), undefined);
  assert.equal(containerOfCgroupPath('/kubepods/besteffort'), undefined);
});
