/**
 * The binary of a process whose executable has no ordinary path: a memfd
 * (fileless execution), an unlinked file, a file bind-mounted on itself and
 * detached (how runc re-executes itself). Real BPF, real processes; the
 * programs are run through python3's os.execve(fd), i.e. fexecve.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startSensor, type SensorHarness } from '../support/sensor.js';
import { waitFor } from '../support/wait.js';

let harness: SensorHarness;
const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-exe-')));
const SLEEP = fs.realpathSync('/bin/sleep');

test.before(() => { harness = startSensor(); });
test.after(() => { harness.stop(); fs.rmSync(tmp, { recursive: true, force: true }); });

/**
 * Runs `setup` (python) that leaves an fd in `fd`, forks a child that fexecve's
 * it as `sleep 0.3` after `readlink /proc/<child>/exe` is taken; prints the
 * child's pid and what /proc said of its exe.
 */
function fexecve(setup: string): { pid: number; procExe: string } {
  const script = `
import os, time, ctypes
${setup}
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(w); os.read(r, 1)
    os.execve(fd, ["sleep", "0.3"], {})
os.close(r); os.write(w, b"x")
time.sleep(0.1)
print(pid, os.readlink(f"/proc/{pid}/exe"), sep="\\n")
os.waitpid(pid, 0)
`;
  const [pid, procExe] = execFileSync('python3', ['-c', script], { encoding: 'utf8' }).trim().split('\n');
  return { pid: Number(pid), procExe: procExe! };
}

async function binaryOf(pid: number): Promise<string> {
  const exec = await waitFor(`the exec of ${pid}`, () => harness.eventsFor([pid]).find((e) => e.type === 'process_exec')?.event.process_exec);
  return exec.process.binary;
}

test('a memfd executable is "/memfd:NAME (deleted)", as /proc/PID/exe reads', async () => {
  const { pid, procExe } = fexecve(`fd = os.memfd_create("vigil-fileless", 0)\nos.write(fd, open("${SLEEP}", "rb").read())`);
  assert.equal(procExe, '/memfd:vigil-fileless (deleted)');
  assert.equal(await binaryOf(pid), procExe);
});

test('an unlinked executable carries " (deleted)", as /proc/PID/exe reads', async () => {
  const file = path.join(tmp, 'gone-sleep');
  const { pid, procExe } = fexecve(`import shutil\nshutil.copy("${SLEEP}", "${file}")\nfd = os.open("${file}", os.O_RDONLY)\nos.unlink("${file}")`);
  assert.equal(procExe, `${file} (deleted)`);
  assert.equal(await binaryOf(pid), procExe);
});

test('an executable on a detached bind mount (runc\'s self-clone) is named by its path in its filesystem, where /proc says "/"', async () => {
  const file = path.join(tmp, 'runc.clone');
  const { pid, procExe } = fexecve(`
libc = ctypes.CDLL(None, use_errno=True)
open("${file}", "w").close()
assert libc.mount(b"${SLEEP}", b"${file}", None, 4096, None) == 0  # MS_BIND
fd = os.open("${file}", os.O_PATH)
assert libc.umount2(b"${file}", 2) == 0  # MNT_DETACH
os.unlink("${file}")`);
  assert.equal(procExe, '/');
  assert.equal(await binaryOf(pid), SLEEP);
});
