/**
 * File exporter: the JSON lines of json-lines.ts in a file rotated by size,
 * as Tetragon's --export-filename with --export-file-max-size-mb and
 * --export-file-max-backups. A file never grows past the size limit except
 * by a single line longer than the limit, which gets a file of its own: lines
 * are never split across files. Rotation renames `f` to `f.1`, `f.1` to
 * `f.2` and so on; the backup past the count is dropped. A write that fails
 * (a full disk) ends the file export: it is logged once, and later events
 * count as failed.
 */
import fs from 'node:fs/promises';
import { Writable } from 'node:stream';
import type { Bus } from '../lib/bus.js';
import { JsonLinesExporter, type JsonLinesOptions, type JsonLinesStats } from './json-lines.js';
import type { Telemetry } from './telemetry.js';

export const DEFAULT_MAX_SIZE_MB = 10;
export const DEFAULT_BACKUPS = 5;

export interface RotatingFileOptions {
  path: string;
  maxSizeBytes: number;
  /** Rotated files kept; 0 truncates instead. */
  backups: number;
}

const NEWLINE = 0x0a;

/** A writable file that rotates at line boundaries once it would pass its size. */
export class RotatingFileStream extends Writable {
  rotations = 0;

  private constructor(private readonly opts: RotatingFileOptions, private file: fs.FileHandle | undefined, private size: number) {
    super();
  }

  /** Opens the file for appending; rejects when it cannot. */
  static async open(opts: RotatingFileOptions): Promise<RotatingFileStream> {
    const file = await fs.open(opts.path, 'a', 0o600);
    return new RotatingFileStream(opts, file, (await file.stat()).size);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.append(chunk).then(() => callback(), callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.closeFile().then(() => callback(), callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.closeFile().then(() => callback(err), () => callback(err));
  }

  private async closeFile(): Promise<void> {
    const file = this.file;
    this.file = undefined;
    await file?.close();
  }

  private async append(chunk: Buffer): Promise<void> {
    let data = chunk;
    const max = this.opts.maxSizeBytes;
    while (data.length > 0) {
      const room = max - this.size;
      if (data.length <= room) {
        await this.writeOut(data);
        return;
      }
      // The whole lines that still fit; a line longer than the limit goes alone into a fresh file.
      let cut = room > 0 ? data.lastIndexOf(NEWLINE, room - 1) + 1 : 0;
      if (cut === 0 && this.size === 0) cut = data.indexOf(NEWLINE) + 1 || data.length;
      if (cut > 0) {
        await this.writeOut(data.subarray(0, cut));
        data = data.subarray(cut);
      }
      // An oversized line just written rotates with the next write, so no empty file is left behind.
      if (data.length > 0) await this.rotate();
    }
  }

  private async writeOut(data: Buffer): Promise<void> {
    await this.file!.writeFile(data);
    this.size += data.length;
  }

  private async rotate(): Promise<void> {
    await this.closeFile();
    const { path, backups } = this.opts;
    if (backups === 0) {
      await fs.truncate(path);
    } else {
      for (let i = backups - 1; i >= 1; i--) await renameIfExists(`${path}.${i}`, `${path}.${i + 1}`);
      await fs.rename(path, `${path}.1`);
    }
    this.file = await fs.open(path, 'a', 0o600);
    this.size = 0;
    this.rotations++;
  }
}

async function renameIfExists(from: string, to: string): Promise<void> {
  try {
    await fs.rename(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

export interface FileExporterOptions extends JsonLinesOptions {
  path: string;
  /** Where the exporter's own metric (rotations) is registered. */
  telemetry?: Telemetry;
  /** Default 10. */
  maxSizeMB?: number;
  /** Default 5. */
  backups?: number;
}

export interface FileExporterStats extends JsonLinesStats { rotations: number }

export class FileExporter {
  private readonly stream: RotatingFileStream;
  private readonly lines: JsonLinesExporter;

  private constructor(bus: Bus, opts: FileExporterOptions, stream: RotatingFileStream) {
    this.stream = stream;
    this.lines = new JsonLinesExporter(bus, stream, opts);
  }

  /** Opens (appends to) the file; rejects when it cannot, or for a bad field filter. */
  static async start(bus: Bus, opts: FileExporterOptions): Promise<FileExporter> {
    const maxSizeMB = opts.maxSizeMB ?? DEFAULT_MAX_SIZE_MB;
    const backups = opts.backups ?? DEFAULT_BACKUPS;
    if (!(maxSizeMB > 0)) throw new Error(`export file max size must be positive, got ${maxSizeMB}`);
    if (!(Number.isInteger(backups) && backups >= 0)) throw new Error(`export file backups must be a whole number, got ${backups}`);
    const stream = await RotatingFileStream.open({
      path: opts.path,
      maxSizeBytes: Math.round(maxSizeMB * 1024 * 1024),
      backups,
    });
    let exporter: FileExporter;
    try {
      exporter = new FileExporter(bus, opts, stream);
    } catch (err) {
      stream.destroy();
      throw err;
    }
    opts.telemetry?.addFamily({
      name: 'export_file_rotations_total', kind: 'counter', help: 'Rotations of the export file.', labelNames: [],
      samples: () => [{ labels: {}, value: stream.rotations }],
    });
    return exporter;
  }

  stats(): FileExporterStats {
    return { ...this.lines.stats(), rotations: this.stream.rotations };
  }

  /** Writes what is pending and closes the file. */
  async close(): Promise<void> {
    this.lines.close();
    if (this.stream.destroyed) return;
    await new Promise<void>((resolve) => this.stream.end(resolve));
  }
}
