/**
 * The start-up snapshot: every process already running, read from /proc into
 * the same shape the kernel's exec records have, so one code path builds
 * process identities for both. A process that exits mid-walk is skipped.
 */
import fs from 'node:fs';
import path from 'node:path';
import { NAMESPACE_NAMES, type KernelProcess, type NamespaceName } from './kernel/records.js';

/** USER_HZ: /proc reports times in these ticks; 100 on every Linux architecture Vigil runs on. */
export const CLOCK_TICKS_PER_SECOND = 100;
const NS_PER_TICK = BigInt(1_000_000_000 / CLOCK_TICKS_PER_SECOND);

export interface ProcSnapshot { proc: KernelProcess; argv: string[]; exe: string; cwd: string }

const NS_LINK = /\[(\d+)\]$/;

function namespaceInodes(procDir: string): Record<NamespaceName, number> {
  const out = {} as Record<NamespaceName, number>;
  for (const name of NAMESPACE_NAMES) {
    try {
      out[name] = Number(NS_LINK.exec(fs.readlinkSync(path.join(procDir, 'ns', name)))?.[1] ?? 0);
    } catch {
      out[name] = 0;
    }
  }
  return out;
}

/** Namespace inodes of the sensor's own process: the host's, when it runs on the host. */
export function hostNamespaces(procRoot = '/proc'): Record<NamespaceName, number> {
  return namespaceInodes(path.join(procRoot, 'self'));
}

function readOr(file: string, fallback: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}

function statusField(status: string, name: string): string[] {
  const line = new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status);
  return line ? line[1]!.trim().split(/\s+/) : [];
}

function cgroupLeaves(cgroupFile: string): { v2Path: string; v2Leaf: string; memoryLeaf: string } {
  let v2Path = '';
  let memoryPath = '';
  for (const line of cgroupFile.split('\n')) {
    const [, controllers, cgPath] = /^\d+:([^:]*):(.*)$/.exec(line) ?? [];
    if (controllers === undefined || cgPath === undefined) continue;
    if (controllers === '') v2Path = cgPath;
    if (controllers.split(',').includes('memory')) memoryPath = cgPath;
  }
  return { v2Path, v2Leaf: path.basename(v2Path), memoryLeaf: path.basename(memoryPath) };
}

/** The cgroup2 mount, where a cgroup's directory inode number is its id. */
export function cgroup2Mount(): string | undefined {
  for (const line of readOr('/proc/self/mounts', '').split('\n')) {
    const [, mountPoint, type] = line.split(' ');
    if (type === 'cgroup2' && mountPoint) return mountPoint;
  }
  return undefined;
}

export function readProcess(pid: number, procRoot = '/proc', cgroup2Root = cgroup2Mount()): ProcSnapshot | undefined {
  const dir = path.join(procRoot, String(pid));
  let stat: string;
  let status: string;
  try {
    stat = fs.readFileSync(path.join(dir, 'stat'), 'utf8');
    status = fs.readFileSync(path.join(dir, 'status'), 'utf8');
  } catch {
    return undefined; // exited during the walk
  }
  // comm may hold spaces and parentheses: fields resume after the last ')'.
  const afterComm = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ppid = Number(afterComm[1]);
  const startTicks = BigInt(afterComm[19] ?? '0');
  const uids = statusField(status, 'Uid').map(Number);
  const gids = statusField(status, 'Gid').map(Number);
  const nspids = statusField(status, 'NSpid').map(Number);
  const cap = (name: string): bigint => BigInt(`0x${statusField(status, name)[0] ?? '0'}`);
  const cgroups = cgroupLeaves(readOr(path.join(dir, 'cgroup'), ''));
  let cgroupId = 0n;
  if (cgroup2Root) {
    try {
      cgroupId = fs.statSync(path.join(cgroup2Root, cgroups.v2Path), { bigint: true }).ino;
    } catch { /* cgroup removed meanwhile */ }
  }
  const link = (name: string): string => {
    try {
      return fs.readlinkSync(path.join(dir, name)).replace(/ \(deleted\)$/, '');
    } catch {
      return '';
    }
  };
  const cmdline = readOr(path.join(dir, 'cmdline'), '');
  return {
    proc: {
      pid, tid: pid, ppid, nspid: nspids[nspids.length - 1] ?? pid,
      startBoottime: startTicks * NS_PER_TICK,
      cgroupId,
      flags: 0,
      creds: {
        uid: uids[0] ?? 0, euid: uids[1] ?? 0, suid: uids[2] ?? 0, fsuid: uids[3] ?? 0,
        gid: gids[0] ?? 0, egid: gids[1] ?? 0, sgid: gids[2] ?? 0, fsgid: gids[3] ?? 0,
        auid: Number(readOr(path.join(dir, 'loginuid'), '4294967295')),
        securebits: 0,
        capEffective: cap('CapEff'), capPermitted: cap('CapPrm'), capInheritable: cap('CapInh'),
      },
      ns: namespaceInodes(dir),
      comm: readOr(path.join(dir, 'comm'), '').trimEnd(),
      cgroupName: cgroups.v2Leaf,
      cgroupV1Name: cgroups.memoryLeaf,
    },
    argv: cmdline === '' ? [] : cmdline.replace(/\0$/, '').split('\0'),
    exe: link('exe'),
    cwd: link('cwd'),
  };
}

/** Every process in /proc, parents before children (by start time, then pid). */
export function walkProc(procRoot = '/proc'): ProcSnapshot[] {
  const cgroup2Root = cgroup2Mount();
  const out: ProcSnapshot[] = [];
  for (const name of fs.readdirSync(procRoot)) {
    if (!/^\d+$/.test(name)) continue;
    const snap = readProcess(Number(name), procRoot, cgroup2Root);
    if (snap) out.push(snap);
  }
  return out.sort((a, b) => (a.proc.startBoottime === b.proc.startBoottime ? a.proc.pid - b.proc.pid : a.proc.startBoottime < b.proc.startBoottime ? -1 : 1));
}
