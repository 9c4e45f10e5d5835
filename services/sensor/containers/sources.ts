/**
 * Where the sensor's pod metadata comes from: containerd's API over its
 * socket (container labels io.kubernetes.*, the image) and, in a cluster, the
 * Kubernetes API (pod labels, which CRI does not put on app containers). When
 * both know a container, the Kubernetes API's namespace, name and labels win.
 */
import fs from 'node:fs';
import { ContainerdMetadata } from './containerd.js';
import { KubernetesPods } from './kubernetes.js';
import { ContainerRegistry, type PodInfo, type PodMetadataSource } from './registry.js';
import { cgroup2Mount } from '../proc-walk.js';
import { DEFAULT_CONTAINERD_SOCKET } from '../../lib/defaults.js';

export interface ContainerSourcesOptions {
  /** containerd's socket; undefined: the default one if it exists, '' none. */
  containerdSocket?: string;
  kubeconfig?: string;
  nodeName: string;
  log: (line: string) => void;
}


class MergedMetadata implements PodMetadataSource {
  constructor(private readonly containerd?: ContainerdMetadata, private readonly kubernetes?: KubernetesPods) {}

  lookup(id: string, podUid?: string): PodInfo | undefined {
    return this.merge(id, this.containerd?.lookup(id), podUid);
  }

  async resolve(id: string, podUid?: string): Promise<PodInfo | undefined> {
    return this.merge(id, await this.containerd?.resolve(id), podUid);
  }

  onChange(cb: (id: string, info: PodInfo | undefined) => void): () => void {
    const offs = [
      this.containerd?.onChange((id, info) => cb(id, info && this.merge(id, info))),
      this.kubernetes?.onChange((id, info) => cb(id, info ? this.lookup(id) : this.containerd?.lookup(id))),
    ];
    return () => { for (const off of offs) off?.(); };
  }

  /**
   * The Kubernetes API's pod, by the container's id in the pod status, else
   * by the pod uid of its cgroup path (the status names a new container a
   * moment after it runs; without a kubelet, never): then the container's
   * name and image are containerd's.
   */
  private merge(id: string, fromContainerd: PodInfo | undefined, podUid?: string): PodInfo | undefined {
    const k8s = this.kubernetes?.lookupContainer(id);
    if (k8s) {
      return {
        ...(fromContainerd ?? { containerId: id, image: k8s.image, labels: {} }),
        namespace: k8s.namespace, podName: k8s.podName, containerName: k8s.containerName, labels: k8s.podLabels,
        ...(k8s.startedAt && { createdAt: k8s.startedAt }),
      };
    }
    const pod = podUid === undefined ? undefined : this.kubernetes?.lookupPod(podUid);
    if (!pod) return fromContainerd;
    return {
      ...(fromContainerd ?? { containerId: id, image: '', containerName: '', labels: {} }),
      namespace: pod.namespace, podName: pod.podName, labels: pod.podLabels,
    };
  }
}

export interface ContainerSources { registry: ContainerRegistry; close(): Promise<void> }

export async function openContainerSources(opts: ContainerSourcesOptions): Promise<ContainerSources> {
  const socket = opts.containerdSocket ?? (fs.existsSync(DEFAULT_CONTAINERD_SOCKET) ? DEFAULT_CONTAINERD_SOCKET : '');
  const containerd = socket === '' ? undefined : await ContainerdMetadata.connect(socket, { log: opts.log });
  const kubernetes = await KubernetesPods.start({ nodeName: opts.nodeName, ...(opts.kubeconfig && { kubeconfig: opts.kubeconfig }), log: opts.log });
  const registry = new ContainerRegistry(cgroup2Mount(), containerd || kubernetes ? new MergedMetadata(containerd, kubernetes) : undefined);
  return {
    registry,
    close: async () => {
      registry.close();
      containerd?.close();
      await kubernetes?.close();
    },
  };
}
