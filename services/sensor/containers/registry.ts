/**
 * The containers on this node, by cgroup: which cgroup2 directory is which
 * container (from its path, cgroup.ts) and, when a metadata source knows it,
 * its pod. The kernel reports a task's cgroup2 id; the directory's path is
 * found by indexing the cgroup2 tree by inode (a cgroup's id is its
 * directory's inode), again whenever an unknown id shows up.
 *
 * Metadata arrives asynchronously (containerd's API, the Kubernetes API): a
 * container first seen before its metadata is `awaitingMetadata` until the
 * source answers (with a pod or without one), so that its first events can
 * wait for the pod (pod-wait.ts); listeners hear of every container added,
 * enriched, settled or gone.
 */
import fs from 'node:fs';
import path from 'node:path';
import { containerOfCgroupPath, type ContainerRef } from './cgroup.js';

/** What a metadata source knows of a container's pod. */
export interface PodInfo {
  containerId: string;
  /** Kubernetes namespace (label io.kubernetes.pod.namespace); '' outside Kubernetes. */
  namespace: string;
  /** Label io.kubernetes.pod.name; '' outside Kubernetes. */
  podName: string;
  /** Label io.kubernetes.container.name; '' outside Kubernetes. */
  containerName: string;
  /** Image reference the container was created from. */
  image: string;
  /** Pod labels; from containerd alone, the container's labels other than the three above. */
  labels: Record<string, string>;
  /** The containerd namespace holding the container ('k8s.io' under CRI), when containerd told. */
  containerdNamespace?: string;
  createdAt?: Date;
}

export interface PodMetadataSource {
  /** `podUid`: the pod uid of the container's cgroup path, for a source that knows pods before their containers. */
  lookup(containerId: string, podUid?: string): PodInfo | undefined;
  resolve(containerId: string, podUid?: string): Promise<PodInfo | undefined>;
  /** `info` undefined: the container is gone. Returns the function that unsubscribes. */
  onChange(cb: (containerId: string, info: PodInfo | undefined) => void): () => void;
}

export interface ContainerInfo {
  ref: ContainerRef; cgroupId: bigint; cgroupPath: string; pod?: PodInfo;
  /** The metadata source has been asked about this container and has not answered yet. */
  awaitingMetadata?: boolean;
}

export class ContainerRegistry {
  /** null: a host cgroup (no container). */
  private readonly byCgroup = new Map<bigint, ContainerInfo | null>();
  private readonly byContainer = new Map<string, ContainerInfo>();
  private readonly listeners = new Set<() => void>();
  private pathsByInode = new Map<bigint, string>();
  private readonly unsubscribe?: () => void;

  /** ctr's `/<namespace>/<id>` layout is a container when the metadata source knows the id. */
  private readonly isContainerdContainer = (_namespace: string, id: string): boolean => this.metadata?.lookup(id) !== undefined;

  constructor(private readonly cgroupRoot: string | undefined, private readonly metadata?: PodMetadataSource) {
    this.unsubscribe = metadata?.onChange((id, info) => this.onMetadata(id, info));
  }

  close(): void {
    this.unsubscribe?.();
  }

  /** Called (synchronously) whenever containers or their pods change. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => { this.listeners.delete(listener); };
  }

  containers(): ContainerInfo[] {
    return [...this.byContainer.values()];
  }

  container(id: string): ContainerInfo | undefined {
    return this.byContainer.get(id);
  }

  /** The container of a cgroup2 id, or undefined for a host cgroup. */
  ofCgroup(cgroupId: bigint): ContainerInfo | undefined {
    const known = this.byCgroup.get(cgroupId);
    if (known !== undefined) return known ?? undefined;
    let cgroupPath = this.pathsByInode.get(cgroupId);
    if (cgroupPath === undefined) {
      this.rescan(); // a new cgroup: host ones are remembered after this, so walks stay rare
      cgroupPath = this.pathsByInode.get(cgroupId);
    }
    if (cgroupPath === undefined) return undefined; // gone already, or not yet indexable: ask again next time
    const ref = containerOfCgroupPath(cgroupPath, this.isContainerdContainer);
    if (!ref) {
      this.byCgroup.set(cgroupId, null);
      return undefined;
    }
    return this.register(ref, cgroupId, cgroupPath);
  }

  private register(ref: ContainerRef, cgroupId: bigint, cgroupPath: string): ContainerInfo {
    const pod = this.metadata?.lookup(ref.id, ref.podUid);
    const info: ContainerInfo = { ref, cgroupId, cgroupPath, ...(pod && { pod }) };
    this.byCgroup.set(cgroupId, info);
    this.byContainer.set(ref.id, info);
    if (!pod && this.metadata) {
      info.awaitingMetadata = true;
      const settle = (resolved: PodInfo | undefined): void => {
        if (!info.awaitingMetadata) return; // an event told first
        info.awaitingMetadata = false;
        if (resolved && this.byContainer.get(ref.id) === info) this.onMetadata(ref.id, resolved);
        else this.notify();
      };
      this.metadata.resolve(ref.id, ref.podUid).then(settle, () => settle(undefined));
    }
    this.notify();
    return info;
  }

  private onMetadata(containerId: string, pod: PodInfo | undefined): void {
    const info = this.byContainer.get(containerId);
    if (!pod) {
      if (!info) return;
      this.byContainer.delete(containerId);
      this.byCgroup.delete(info.cgroupId);
      this.notify();
      return;
    }
    if (info) {
      info.pod = pod;
      info.awaitingMetadata = false;
      this.notify();
      return;
    }
    // A container we have not seen a process of yet: find its cgroup (if runc made it already),
    // so scoped policies cover it from its start; else its first process registers it.
    this.rescan();
    for (const [inode, p] of this.pathsByInode) {
      const ref = containerOfCgroupPath(p, this.isContainerdContainer);
      if (ref?.id === containerId) {
        this.register(ref, inode, p).pod = pod;
        this.notify();
        return;
      }
    }
  }

  private notify(): void {
    for (const listener of this.listeners) listener();
  }

  /** Re-indexes the cgroup2 tree by inode. */
  private rescan(): void {
    if (!this.cgroupRoot) return;
    const index = new Map<bigint, string>();
    const walk = (dir: string, rel: string): void => {
      let entries: fs.Dirent[];
      try {
        index.set(fs.statSync(dir, { bigint: true }).ino, rel || '/');
        entries = fs.readdirSync(dir, { withFileTypes: true });
      } catch {
        return; // removed meanwhile
      }
      for (const e of entries) if (e.isDirectory()) walk(path.join(dir, e.name), `${rel}/${e.name}`);
    };
    walk(this.cgroupRoot, '');
    this.pathsByInode = index;
  }
}
