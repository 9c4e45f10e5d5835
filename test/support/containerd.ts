/**
 * Real containers for tests: a private containerd (Debian's containerd 1.6 +
 * runc) and the `ctr` client, as /work/shared/CONTAINERS.md describes.
 *
 * Everything lives in one temporary directory (containerd's root, state,
 * socket, runc's root, the FIFOs, container logs), so several test files can
 * run their own containerd at once. What cannot be put there is tracked and
 * removed by stop(): the shims' sockets under /run/containerd/s (the shim
 * always puts them there), the cgroup directories created for containers
 * (runc removes the leaf, its parents outlive it), and any mount or process
 * left when a test failed half-way.
 *
 * No image registry is reachable, so images are built from the host's
 * busybox-static (buildBusyboxImage) and imported with `ctr images import`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { terminate } from './wait.js';

const execFileP = promisify(execFile);

const CONTAINERD = '/usr/bin/containerd';
const CTR = '/usr/bin/ctr';
const BUSYBOX = '/bin/busybox';
/** Where every runc v2 shim puts its socket, whatever containerd's config says. */
const SHIM_SOCKET_DIR = '/run/containerd/s';
const TMPFS_MAGIC = 0x01021994;
const OVERLAYFS_MAGIC = 0x794c7630;

export interface Containerd {
  /** containerd's gRPC socket. */
  readonly socket: string;
  /** The containerd namespace that images and containers of this harness use. */
  readonly namespace: string;
  /** The temporary directory holding all of this containerd's files. */
  readonly dir: string;
  /** 'overlayfs', or 'native' where overlayfs cannot stack (tmpfs, overlay). */
  readonly snapshotter: string;
  /** Runs `ctr` against this containerd and namespace; rejects with stderr on failure. */
  ctr(args: string[]): Promise<string>;
  /** Stops containerd (SIGTERM; shims and containers keep running), then starts it again. */
  restart(downMs?: number): Promise<void>;
  /** Removes every container, stops containerd and removes everything it left behind. */
  stop(): Promise<void>;
}

export interface StartContainerdOptions {
  /** containerd namespace; default 'k8s.io' (CRI's, which is what a sensor sees on a node). */
  namespace?: string;
  /** How long to wait for the socket to accept connections; default 10 s. */
  startTimeoutMs?: number;
}

export interface RunOptions {
  id: string;
  /** Image reference as imported (buildBusyboxImage). */
  image: string;
  /** Command and arguments. */
  args: string[];
  /** All capabilities, devices, no seccomp and (unlike `ctr run --privileged` alone) no no_new_privs. */
  privileged?: boolean;
  labels?: Record<string, string>;
  /**
   * Parent cgroup, e.g. `/kubepods/besteffort/pod<uid>` so paths look like
   * Kubernetes'; the container's cgroup is `<parent>/<id>`. Default `/<namespace>`,
   * as ctr itself does.
   */
  cgroupParent?: string;
  /** Only detached containers are supported: the call returns once the task runs. */
  detach: true;
}

export interface RunningContainer {
  id: string;
  /** Host pid of the container's init process. */
  pid: number;
  /** The cgroup path that /proc/<pid>/cgroup lines end in. */
  cgroupPath: string;
  /** Where the container's stdout and stderr go. */
  logPath: string;
}

interface ContainerRecord {
  cgroupPath: string;
}

interface HarnessState {
  /** Containers run and not yet removed. */
  containers: Map<string, ContainerRecord>;
  /** Every id ever run, to find the shims' sockets at the end. */
  everRun: Set<string>;
  /**
   * Cgroup directories (in every hierarchy) that did not exist before this
   * harness ran a container in them. Parents are shared by containers, so
   * each goes when its last child has gone.
   */
  cgroupDirs: Set<string>;
}

const states = new WeakMap<Containerd, HarnessState>();

function stateOf(ctd: Containerd): HarnessState {
  const state = states.get(ctd);
  if (state === undefined) throw new Error('not a containerd started by startContainerd()');
  return state;
}

/** A random 64-hex container id, the shape containerd's CRI plugin gives containers. */
export function hexId(): string {
  return crypto.randomBytes(32).toString('hex');
}

function snapshotterFor(dir: string): string {
  const { type } = fs.statfsSync(dir);
  return type === TMPFS_MAGIC || type === OVERLAYFS_MAGIC ? 'native' : 'overlayfs';
}

/** The mount points of every cgroup hierarchy (v1 controllers, named ones, the v2 tree). */
function cgroupMounts(): string[] {
  const mounts: string[] = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const fstype = line.slice(sep + 3).split(' ')[0];
    if (fstype === 'cgroup' || fstype === 'cgroup2') mounts.push(line.split(' ')[4]!);
  }
  return mounts;
}

/** Mount points at or below `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
    .map((line) => line.split(' ')[4])
    .filter((mp): mp is string => mp !== undefined && (mp === dir || mp.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
}

function rmdirQuiet(dir: string): void {
  try { fs.rmdirSync(dir); } catch { /* gone, or still in use by someone else */ }
}

function hasChildCgroups(dir: string): boolean {
  try {
    return fs.readdirSync(dir, { withFileTypes: true }).some((entry) => entry.isDirectory());
  } catch {
    return false;
  }
}

/**
 * Removes the harness's cgroup directories at or above `cgroupPath` (all of
 * them when undefined), deepest first, skipping those that still have
 * children. A directory without children is empty of cgroups but may still
 * count a task that is exiting (EBUSY): that is retried for a while.
 */
async function removeCgroupDirs(state: HarnessState, cgroupPath: string | undefined): Promise<void> {
  const mine = [...state.cgroupDirs]
    .filter((dir) => cgroupPath === undefined || cgroupMounts().some((m) => `${m}${cgroupPath}/`.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
  for (const dir of mine) {
    if (hasChildCgroups(dir)) continue;
    for (let attempt = 0; ; attempt++) {
      try {
        fs.rmdirSync(dir);
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') break;
        if (code !== 'EBUSY' || attempt >= 50) throw new Error(`cannot remove cgroup ${dir}: ${String(err)}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
    state.cgroupDirs.delete(dir);
  }
}

function killPid(pid: number): void {
  try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
}

/** The shim processes started for this containerd: their command line names its socket. */
function shimPids(socket: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try { argv = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0'); } catch { continue; }
    const at = argv.indexOf('-address');
    if (at >= 0 && argv[at + 1] === socket && path.basename(argv[0] ?? '').startsWith('containerd-shim')) pids.push(Number(entry));
  }
  return pids;
}

async function waitForSocket(socket: string, child: ChildProcess, logPath: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let spawnError: Error | undefined;
  child.once('error', (err) => { spawnError = err; });
  for (;;) {
    if (spawnError !== undefined) throw new Error(`cannot run ${CONTAINERD}: ${spawnError.message}`);
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`containerd exited (${child.exitCode ?? child.signalCode}) before it was ready: ${fs.readFileSync(logPath, 'utf8').slice(-4000)}`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const sock = net.connect(socket);
      sock.once('connect', () => { sock.destroy(); resolve(true); });
      sock.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`containerd not ready after ${timeoutMs} ms: ${fs.readFileSync(logPath, 'utf8').slice(-4000)}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export async function startContainerd(opts: StartContainerdOptions = {}): Promise<Containerd> {
  const namespace = opts.namespace ?? 'k8s.io';
  const startTimeoutMs = opts.startTimeoutMs ?? 10_000;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-ctd-'));
  const socket = path.join(dir, 'containerd.sock');
  const logPath = path.join(dir, 'containerd.log');
  const configPath = path.join(dir, 'config.toml');
  const snapshotter = snapshotterFor(dir);
  const shimDirExisted = fs.existsSync(SHIM_SOCKET_DIR);
  const runDirExisted = fs.existsSync(path.dirname(SHIM_SOCKET_DIR));
  const state: HarnessState = { containers: new Map(), everRun: new Set(), cgroupDirs: new Set() };
  fs.writeFileSync(configPath, [
    'version = 2',
    `root = "${dir}/root"`,
    `state = "${dir}/state"`,
    // CRI would start its own networking and image services; this harness drives containers with ctr.
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]',
    `  address = "${socket}"`,
    '[ttrpc]',
    `  address = "${socket}.ttrpc"`,
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = "${dir}/opt"`,
    '',
  ].join('\n'));

  let child: ChildProcess;
  const launch = async (): Promise<void> => {
    const log = fs.openSync(logPath, 'a');
    child = spawn(CONTAINERD, ['--config', configPath], { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    await waitForSocket(socket, child, logPath, startTimeoutMs);
  };
  const halt = (): Promise<void> => terminate(child);

  const ctd: Containerd = {
    socket,
    namespace,
    dir,
    snapshotter,
    ctr: async (args) => {
      try {
        const { stdout } = await execFileP(CTR, ['--address', socket, '--namespace', namespace, ...args], { timeout: 60_000, maxBuffer: 16 << 20 });
        return stdout;
      } catch (err) {
        const e = err as { stderr?: string; message: string };
        throw new Error(`ctr ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
      }
    },
    restart: async (downMs = 0) => {
      await halt();
      if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
      await launch();
    },
    stop: async () => {
      const own = state.containers;
      const failures: string[] = [];
      for (const id of [...own.keys()]) {
        try {
          await stopContainer(ctd, id);
          await removeContainer(ctd, id);
        } catch (err) {
          failures.push(String(err));
        }
      }
      await halt();
      // Whatever a failed removal left: container processes first (their shim would reap them), then shims.
      for (const record of own.values()) {
        for (const mount of cgroupMounts()) {
          const procs = path.join(mount, record.cgroupPath, 'cgroup.procs');
          if (!fs.existsSync(procs)) continue;
          for (const pid of fs.readFileSync(procs, 'utf8').split('\n').filter(Boolean)) killPid(Number(pid));
        }
      }
      for (const pid of shimPids(socket)) killPid(pid);
      await removeCgroupDirs(state, undefined).catch((err) => failures.push(String(err)));
      for (const mount of mountsUnder(dir)) {
        await execFileP('umount', ['-l', mount]).catch((err) => failures.push(`umount ${mount}: ${String(err)}`));
      }
      for (const id of state.everRun) {
        const hash = crypto.createHash('sha256').update(path.join(socket, namespace, id)).digest('hex');
        fs.rmSync(path.join(SHIM_SOCKET_DIR, hash), { force: true });
      }
      if (!shimDirExisted) rmdirQuiet(SHIM_SOCKET_DIR);
      if (!runDirExisted) rmdirQuiet(path.dirname(SHIM_SOCKET_DIR));
      fs.rmSync(dir, { recursive: true, force: true });
      if (failures.length > 0) throw new Error(`containerd cleanup: ${failures.join('; ')}`);
    },
  };
  states.set(ctd, state);
  try {
    await launch();
  } catch (err) {
    await halt();
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return ctd;
}

function sha256File(file: string): { digest: string; size: number } {
  const data = fs.readFileSync(file);
  return { digest: `sha256:${crypto.createHash('sha256').update(data).digest('hex')}`, size: data.length };
}

/** Writes a JSON blob into an OCI layout's blobs/sha256 and returns its descriptor fields. */
function writeJsonBlob(layout: string, value: unknown): { digest: string; size: number } {
  const data = Buffer.from(JSON.stringify(value));
  const hex = crypto.createHash('sha256').update(data).digest('hex');
  fs.writeFileSync(path.join(layout, 'blobs', 'sha256', hex), data);
  return { digest: `sha256:${hex}`, size: data.length };
}

const OCI_ARCH: Partial<Record<string, string>> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

/**
 * Builds a one-layer OCI image from the host's busybox-static (a symlink per
 * applet, a minimal /etc/passwd and /etc/group) and imports it as `ref`
 * (e.g. 'docker.io/vigil/busybox:test') into the harness's namespace, unpacked
 * for its snapshotter.
 */
export async function buildBusyboxImage(ctd: Containerd, ref: string): Promise<void> {
  const work = fs.mkdtempSync(path.join(ctd.dir, 'image-'));
  const rootfs = path.join(work, 'rootfs');
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'root', 'tmp', 'proc', 'sys', 'dev']) fs.mkdirSync(path.join(rootfs, d), { recursive: true });
  fs.copyFileSync(BUSYBOX, path.join(rootfs, 'bin', 'busybox'));
  fs.chmodSync(path.join(rootfs, 'bin', 'busybox'), 0o755);
  fs.chmodSync(path.join(rootfs, 'tmp'), 0o1777);
  const { stdout: applets } = await execFileP(BUSYBOX, ['--list-full']);
  for (const applet of applets.split('\n').filter(Boolean)) {
    const target = path.join(rootfs, applet);
    if (applet === 'bin/busybox' || fs.existsSync(target)) continue;
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.symlinkSync('/bin/busybox', target);
  }
  fs.writeFileSync(path.join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  fs.writeFileSync(path.join(rootfs, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');

  const layout = path.join(work, 'layout');
  const blobs = path.join(layout, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  // Uncompressed, so the layer's digest is also its diff id.
  const layerTar = path.join(work, 'layer.tar');
  await execFileP('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-C', rootfs, '-cf', layerTar, '.']);
  const layer = sha256File(layerTar);
  fs.renameSync(layerTar, path.join(blobs, layer.digest.slice('sha256:'.length)));

  const architecture = OCI_ARCH[process.arch] ?? process.arch;
  const config = writeJsonBlob(layout, {
    architecture,
    os: 'linux',
    config: { Env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: [layer.digest] },
  });
  const manifest = writeJsonBlob(layout, {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
  });
  fs.writeFileSync(path.join(layout, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      ...manifest,
      platform: { architecture, os: 'linux' },
      // A full reference (it has a '/'), which ctr keeps as the image name.
      annotations: { 'org.opencontainers.image.ref.name': ref },
    }],
  }));
  fs.writeFileSync(path.join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const imageTar = path.join(work, 'image.tar');
  await execFileP('tar', ['-C', layout, '-cf', imageTar, 'oci-layout', 'index.json', 'blobs']);
  await ctd.ctr(['images', 'import', '--snapshotter', ctd.snapshotter, imageTar]);
  fs.rmSync(work, { recursive: true, force: true });
}

/** The pid of a container's init process, from `ctr tasks ls`. */
async function taskPid(ctd: Containerd, id: string): Promise<{ pid: number; status: string } | undefined> {
  for (const line of (await ctd.ctr(['tasks', 'ls'])).split('\n').slice(1)) {
    const [task, pid, status] = line.trim().split(/\s+/);
    if (task === id) return { pid: Number(pid), status: status ?? '' };
  }
  return undefined;
}

/** Starts a detached container with `ctr run`; resolves once its task runs. */
export async function runContainer(ctd: Containerd, opts: RunOptions): Promise<RunningContainer> {
  const state = stateOf(ctd);
  if (state.containers.has(opts.id)) throw new Error(`container ${opts.id} already runs`);
  const parent = (opts.cgroupParent ?? `/${ctd.namespace}`).replace(/\/+$/, '');
  const cgroupPath = `${parent}/${opts.id}`;
  // Remember which directories of the path are new in each hierarchy, to remove exactly those later.
  const segments = cgroupPath.split('/').filter(Boolean);
  for (const mount of cgroupMounts()) {
    for (let n = segments.length; n > 0; n--) {
      const dir = path.join(mount, ...segments.slice(0, n));
      if (fs.existsSync(dir)) break;
      state.cgroupDirs.add(dir);
    }
  }
  const logDir = path.join(ctd.dir, 'logs');
  const fifoDir = path.join(ctd.dir, 'fifo');
  fs.mkdirSync(logDir, { recursive: true });
  fs.mkdirSync(fifoDir, { recursive: true });
  const logPath = path.join(logDir, `${opts.id}.log`);

  const args = ['run', '--detach', '--snapshotter', ctd.snapshotter, '--fifo-dir', fifoDir,
    '--runc-root', path.join(ctd.dir, 'runc'), '--log-uri', `file://${logPath}`, '--cgroup', cgroupPath];
  if (opts.privileged) args.push('--privileged', '--allow-new-privs');
  for (const [key, value] of Object.entries(opts.labels ?? {})) args.push('--label', `${key}=${value}`);
  args.push(opts.image, opts.id, ...opts.args);
  state.everRun.add(opts.id);
  state.containers.set(opts.id, { cgroupPath });
  await ctd.ctr(args);
  const task = await taskPid(ctd, opts.id);
  if (task === undefined) throw new Error(`container ${opts.id} has no task after ctr run`);
  return { id: opts.id, pid: task.pid, cgroupPath, logPath };
}

/** Runs a command in a running container (`ctr tasks exec`) and resolves with its stdout. */
export async function execInContainer(ctd: Containerd, id: string, args: string[]): Promise<string> {
  const execId = `exec-${crypto.randomBytes(6).toString('hex')}`;
  return ctd.ctr(['tasks', 'exec', '--exec-id', execId, '--fifo-dir', path.join(ctd.dir, 'fifo'), id, ...args]);
}

/** Kills the container's task (SIGKILL), waits for it to stop and deletes the task. */
export async function stopContainer(ctd: Containerd, id: string, timeoutMs = 10_000): Promise<void> {
  const task = await taskPid(ctd, id);
  if (task === undefined) return;
  if (task.status !== 'STOPPED') {
    await ctd.ctr(['tasks', 'kill', '--all', '--signal', 'SIGKILL', id]);
    const deadline = Date.now() + timeoutMs;
    while ((await taskPid(ctd, id))?.status !== 'STOPPED') {
      if (Date.now() > deadline) throw new Error(`task ${id} still runs ${timeoutMs} ms after SIGKILL`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  await ctd.ctr(['tasks', 'delete', id]);
}

/** Deletes a stopped container and its snapshot, and the cgroup directories made for it. */
export async function removeContainer(ctd: Containerd, id: string): Promise<void> {
  const state = stateOf(ctd);
  const record = state.containers.get(id);
  if ((await ctd.ctr(['containers', 'ls', '--quiet'])).split('\n').includes(id)) await ctd.ctr(['containers', 'delete', id]);
  if (record === undefined) return;
  await removeCgroupDirs(state, record.cgroupPath);
  state.containers.delete(id);
}
