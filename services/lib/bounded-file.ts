/**
 * Reading a file whose size is not ours to trust (a policy, saved state,
 * /proc of a process that may be hostile): at most `maxBytes` and one more
 * are read, and what is no regular file is refused before a byte is read (a
 * FIFO or /dev/zero would never end). procfs files are regular files of
 * size 0.
 */
import fs from 'node:fs';

export interface FileHead {
  /** The first bytes, at most maxBytes. */
  data: Buffer;
  /** The size fstat gave. */
  size: number;
  /** Whether the file holds more than maxBytes: by its size, or by what a read found past it. */
  more: boolean;
}

export interface ReadOptions {
  /**
   * Read a pipe or a device too, waiting for its writer (a command's own
   * input: `vigil policy add /dev/stdin`); still at most maxBytes + 1, so
   * /dev/zero ends as "more". Default: a regular file only, refused at once.
   */
  anyKind?: boolean;
}

/** Up to `maxBytes` of a file, from its start; throws "not a regular file" for anything else unless `anyKind`. */
export function readFileHead(file: string, maxBytes: number, { anyKind = false }: ReadOptions = {}): FileHead {
  // Non-blocking unless asked: opening a FIFO for reading would otherwise wait for a writer.
  const fd = fs.openSync(file, anyKind ? fs.constants.O_RDONLY : fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  try {
    const stat = fs.fstatSync(fd);
    if (!anyKind && !stat.isFile()) throw new Error('not a regular file');
    const size = stat.size;
    // One byte past the bound: a file that grew since its stat, or a procfs file (size 0), shows it holds more.
    const buf = Buffer.allocUnsafe(maxBytes + 1); // only the bytes read are used
    let length = 0;
    while (length < buf.length) {
      const got = fs.readSync(fd, buf, length, buf.length - length, null);
      if (got === 0) break;
      length += got;
    }
    return { data: buf.subarray(0, Math.min(length, maxBytes)), size, more: length > maxBytes || size > maxBytes };
  } finally {
    fs.closeSync(fd);
  }
}
