/**
 * Container identity from a cgroup path, for the runtimes' layouts:
 *   containerd (ctr)          /<namespace>/<id>
 *   Kubernetes, cgroupfs      /kubepods[/<qos>]/pod<uid>/<id>
 *   Kubernetes, systemd       /kubepods.slice/…/kubepods-<qos>-pod<uid>.slice/cri-containerd-<id>.scope
 *   cri-o                     …/crio-<id>.scope
 *   docker                    /docker/<id>, …/docker-<id>.scope
 *   runc's "slice:prefix:name" cgroupsPath (systemd driver)  …:<id>
 * Tetragon's `docker` field is the first 31 characters of the id.
 */

export interface ContainerRef {
  id: string;
  /** The runtime the layout names, for `pod.container.id` ("containerd://<id>"). */
  runtime: 'containerd' | 'cri-o' | 'docker';
  /** Kubernetes pod uid, when the path has one. */
  podUid?: string;
}

export const DOCKER_ID_LENGTH = 31;

const HEX_ID = /^[0-9a-f]{64}$/;
const SCOPE = /^(cri-containerd|crio|docker)-([0-9a-f]{64})\.scope$/;
/** `pod<uid>` (cgroupfs) or `kubepods-<qos>-pod<uid with _>.slice` (systemd). */
const POD_UID = /^(?:kubepods-(?:besteffort-|burstable-|guaranteed-)?)?pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?$/;

function podUidOf(segments: string[]): string | undefined {
  for (const s of segments) {
    const m = POD_UID.exec(s);
    if (m) return m[1]!.replace(/_/g, '-');
  }
  return undefined;
}

/**
 * The container a cgroup path belongs to, or undefined for a host cgroup.
 * `isContainerdContainer(namespace, id)` tells whether `/<namespace>/<id>` is
 * a containerd container (ctr's layout has nothing else to recognise it by).
 */
export function containerOfCgroupPath(path: string, isContainerdContainer: (namespace: string, id: string) => boolean = () => false): ContainerRef | undefined {
  const segments = path.split('/').filter((s) => s !== '');
  if (segments.length === 0) return undefined;
  const leaf = segments[segments.length - 1]!;
  const inKubepods = segments[0]!.startsWith('kubepods');
  const scope = SCOPE.exec(leaf);
  if (scope) {
    const runtime = scope[1] === 'crio' ? 'cri-o' : scope[1] === 'docker' ? 'docker' : 'containerd';
    return { id: scope[2]!, runtime, ...(inKubepods && { podUid: podUidOf(segments) }) };
  }
  const afterColon = leaf.slice(leaf.lastIndexOf(':') + 1);
  if (HEX_ID.test(afterColon)) {
    const runtime = segments[0] === 'docker' ? 'docker' : 'containerd';
    const podUid = inKubepods ? podUidOf(segments.slice(0, -1)) : undefined;
    return { id: afterColon, runtime, ...(podUid && { podUid }) };
  }
  if (segments.length === 2 && isContainerdContainer(segments[0]!, leaf)) return { id: leaf, runtime: 'containerd' };
  return undefined;
}
