/**
 * Default addresses and socket paths, written once: the services use them
 * when no flag says otherwise, and the CLI's help texts quote them.
 */

/** The public API on TCP: Tetragon's default. */
export const DEFAULT_SERVER_ADDRESS = 'localhost:54321';
/** The public API on a unix socket (`tetra --server-address unix:///var/run/vigil/tetragon.sock`). */
export const DEFAULT_SERVER_UNIX_SOCKET = '/var/run/vigil/tetragon.sock';
/** The sensor's control API (vigil.v1.SensorControlService), split shape. */
export const DEFAULT_CONTROL_SOCKET = '/var/run/vigil/sensor-control.sock';
/** The enforcer's policy API, to which a split-shape sensor forwards policy methods. */
export const DEFAULT_ENFORCER_SOCKET = '/var/run/vigil/enforcer.sock';
/** containerd's API, for pod metadata, used when it exists. */
export const DEFAULT_CONTAINERD_SOCKET = '/run/containerd/containerd.sock';
/** NATS with JetStream, split shape. */
export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';
/** Where `vigil agent` pins its BPF links so that enforcement outlives the process (bpffs). */
export const DEFAULT_BPF_PIN_DIR = '/sys/fs/bpf/vigil';
/** Where `vigil agent` keeps the policies added through the API across restarts. */
export const DEFAULT_STATE_DIR = '/var/lib/vigil/policies';
