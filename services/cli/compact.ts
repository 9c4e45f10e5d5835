/**
 * The one-line-per-event form of `vigil events -o compact`, matching the
 * output of Tetragon's compact encoder (`tetra getevents -o compact`) so that
 * people and scripts used to it read Vigil's the same way.
 *
 * It works on the Tetragon JSON shape (protojson, proto field names, zero
 * values omitted, 64-bit numbers as strings, enums as names), so events read
 * from stdin and events from the gRPC stream go through the same code.
 */

type Json = Record<string, unknown>;

export interface CompactOptions {
  /** Wrap the parts in ANSI colours as Tetragon does. */
  color?: boolean;
  /** Prefix the line with the event time (UTC, nanoseconds). */
  timestamps?: boolean;
}

const asObject = (v: unknown): Json | undefined =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined;
const text = (v: unknown): string => (typeof v === 'string' ? v : '');
/** A number as protojson writes it (a string for 64-bit fields); an omitted field is 0. */
const numeric = (v: unknown): string => (typeof v === 'number' || (typeof v === 'string' && v !== '') ? String(v) : '0');

// Go's strconv.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space.
const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u;
const QUOTE_ESCAPES: Record<string, string> = {
  '\x07': '\\a', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\v': '\\v', '"': '\\"', '\\': '\\\\',
};

/** Go's strconv.Quote, so escaped output is byte-for-byte Tetragon's. */
function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    const hex = (digits: number): string => cp.toString(16).padStart(digits, '0');
    out += QUOTE_ESCAPES[ch]
      ?? (PRINTABLE.test(ch) ? ch : cp < 0x20 || cp === 0x7f ? `\\x${hex(2)}` : cp < 0x10000 ? `\\u${hex(4)}` : `\\U${hex(8)}`);
  }
  return `${out}"`;
}

/**
 * Event strings are untrusted (paths, arguments, host names): quote any that
 * hold a space or a non-printable character, so a terminal escape sequence or
 * a newline cannot forge output (Tetragon's maybeQuote).
 */
function maybeQuote(s: string): string {
  for (const ch of s) {
    if (ch === ' ' || !PRINTABLE.test(ch)) return goQuote(s);
  }
  return s;
}

/**
 * Arguments are already a space-separated list with their own quoting
 * (`-g "daemon off;"`), printed as they are, as in the seed's lines; only a
 * non-printable character makes the whole string quoted.
 */
function argumentsText(s: string): string {
  for (const ch of s) {
    if (!PRINTABLE.test(ch)) return goQuote(s);
  }
  return s;
}

const SGR = { red: 31, green: 32, yellow: 33, blue: 34, magenta: 35, cyan: 36 } as const;
type Colour = keyof typeof SGR;
type Paint = (colour: Colour, s: string) => string;

const paintWith = (enabled: boolean): Paint =>
  enabled ? (colour, s) => `\x1b[${SGR[colour]}m${s}\x1b[0m` : (_colour, s) => s;
const stripColour = (s: string): string => s.replace(/\x1b\[[0-9;]*m/g, '');

const SYS_ADMIN = '🛑 CAP_SYS_ADMIN';
/** Tetragon right-aligns the capability marker so it ends at byte column 120 (or follows one space). */
const CAPS_COLUMN = 120;

/** The capability marker Tetragon prints: only CAP_SYS_ADMIN, and only from the effective set. */
function holdsSysAdmin(process: Json): boolean {
  const effective = asObject(process.cap)?.effective;
  return Array.isArray(effective) && effective.includes('CAP_SYS_ADMIN');
}

/** Namespace names by CLONE_NEW* flag, for setns. */
const NAMESPACE_BY_FLAG: Record<number, string> = {
  0: 'any', 0x2000000: 'cgroup', 0x8000000: 'ipc', 0x40000000: 'net', 0x20000: 'mnt',
  0x20000000: 'pid', 0x80: 'time', 0x10000000: 'user', 0x4000000: 'uts',
};

/** Kernel symbols of syscalls carry an architecture prefix; the encoder matches on the bare name. */
const SYSCALL_PREFIX = /^(__x64_|__arm64_|__ia32_)/;

/** Renders one event; `event` is the payload under its oneof field. */
class Line {
  constructor(private readonly paint: Paint) {}

  /** The emoji and the event word padded to 7 columns (Go's `%-7s`). */
  head(prefix: string, word: string, colour: Colour = 'blue'): string {
    return this.paint(colour, prefix + word.padEnd(7));
  }

  cyan(s: string): string {
    return this.paint('cyan', s);
  }

  /**
   * `<head> <source> <binary> <rest...>` plus the capability marker, where the
   * source is `namespace/pod` for pod processes and `host` otherwise (the
   * form the issue and the seed use; Tetragon 1.x prints the node name there).
   */
  process(event: Json, head: string, ...rest: string[]): string | undefined {
    const process = asObject(event.process);
    if (process === undefined) return undefined;
    const pod = asObject(process.pod);
    const source = pod !== undefined
      ? `${text(pod.namespace)}/${text(pod.name)}`
      : 'host';
    const line = [head, this.paint('green', source), this.paint('magenta', maybeQuote(text(process.binary))), ...rest].join(' ');
    if (!holdsSysAdmin(process)) return line;
    const room = Math.max(0, CAPS_COLUMN - Buffer.byteLength(stripColour(line)));
    return `${line} ${' '.repeat(Math.max(0, room - [...SYS_ADMIN].length))}${this.paint('magenta', SYS_ADMIN)}`;
  }

  exec(event: Json): string | undefined {
    const args = this.cyan(argumentsText(text(asObject(event.process)?.arguments)));
    return this.process(event, this.head('🚀 ', 'process'), args);
  }

  exit(event: Json): string | undefined {
    const args = this.cyan(argumentsText(text(asObject(event.process)?.arguments)));
    const status = this.paint('red', text(event.signal) || numeric(event.status));
    return this.process(event, this.head('💥 ', 'exit'), args, status);
  }

  kprobe(event: Json): string | undefined {
    const fn = text(event.function_name);
    const args = Array.isArray(event.args) ? event.args : [];
    const arg = (i: number): Json | undefined => asObject(args[i]);
    const file = (i: number): string => {
      const f = asObject(arg(i)?.file_arg);
      return f === undefined ? '' : this.cyan(maybeQuote(text(f.path)));
    };
    const str = (i: number): string => (arg(i) === undefined ? '' : this.cyan(maybeQuote(text(arg(i)!.string_arg))));
    const size = (i: number): string => (arg(i) === undefined ? '' : this.cyan(`${numeric(arg(i)!.size_arg)} bytes`));
    const sock = (): string => {
      if (arg(0) === undefined) return '';
      const s = asObject(arg(0)!.sock_arg) ?? {};
      return this.cyan(`tcp ${text(s.saddr)}:${numeric(s.sport)} -> ${text(s.daddr)}:${numeric(s.dport)}`);
    };
    const nested = (i: number, field: string): Json => asObject(arg(i)?.[field]) ?? {};

    switch (fn.replace(SYSCALL_PREFIX, '')) {
      case 'sys_write':
        return this.process(event, this.head('📝 ', 'write'), file(0), size(2));
      case 'sys_read':
        return this.process(event, this.head('📚 ', 'read'), file(0), size(2));
      case 'fd_install':
        return this.process(event, this.head('📬 ', 'open'), file(1));
      case 'sys_openat':
        return this.process(event, this.head('📬\uFE0F ', 'openat'), str(1));
      case 'sys_open':
        return this.process(event, this.head('📬\uFE0F ', 'open'), str(1));
      case 'sys_close':
        return this.process(event, this.head('📪 ', 'close'), file(0));
      case 'sys_mount':
        return this.process(event, this.head('💾 ', 'mount'), str(0), str(1));
      case 'sys_setuid':
        return this.process(event, this.head('🔑 ', 'setuid'), arg(0) === undefined ? '' : this.cyan(numeric(arg(0)!.int_arg)));
      case 'sys_clock_settime':
        return this.process(event, this.head('⏰ ', 'clock_settime'));
      case 'sys_pivot_root':
        return this.process(event, this.head('💾 ', 'pivot_root'), str(0), str(1));
      case 'proc_exec_connector':
        return this.process(event, this.head('🔧 ', 'proc_exec_connector'));
      case 'sys_setns':
        return this.process(event, this.head('🔧 ', 'setns'),
          arg(1) === undefined ? '' : NAMESPACE_BY_FLAG[Number(arg(1)!.int_arg ?? 0)] ?? '');
      case 'tcp_connect':
        return this.process(event, this.head('🔌 ', 'connect'), sock());
      case 'tcp_close':
        return this.process(event, this.head('🧹 ', 'close'), sock());
      case 'tcp_sendmsg':
        return this.process(event, this.head('📤 ', 'sendmsg'), sock(), 'bytes', arg(1) === undefined ? '0' : numeric(arg(1)!.int_arg));
      case 'bpf_check': {
        const a = nested(0, 'bpf_attr_arg');
        return this.process(event, this.head('🐝 ', 'bpf_load'),
          arg(0) === undefined ? '' : this.cyan(`${text(a.prog_type)} ${text(a.prog_name)} instruction count ${numeric(a.insn_cnt)}`));
      }
      case 'security_perf_event_alloc': {
        const a = nested(0, 'perf_event_arg');
        return this.process(event, this.head('🐝 ', 'perf_event_alloc'),
          arg(0) === undefined ? '' : this.cyan(`${text(a.type)} ${text(a.kprobe_func)}`));
      }
      case 'security_bpf_map_alloc':
      case 'security_bpf_map_create': {
        const m = nested(0, 'bpf_map_arg');
        return this.process(event, this.head('🗺 ', 'bpf_map_create'), arg(0) === undefined ? '' : this.cyan(
          `${text(m.map_type)} ${text(m.map_name)} key size ${numeric(m.key_size)} value size ${numeric(m.value_size)} max entries ${numeric(m.max_entries)}`));
      }
      case 'security_file_permission': {
        if (arg(0) === undefined || arg(1) === undefined) return this.process(event, this.head('❓ ', fn), '');
        // MAY_WRITE / MAY_READ
        const mask = Number(arg(1)!.int_arg ?? 0);
        const head = mask === 0x02 ? this.head('📝 ', 'write') : mask === 0x04 ? this.head('📚 ', 'read') : this.head('❓ ', fn);
        return this.process(event, head, this.cyan(maybeQuote(text(nested(0, 'file_arg').path))));
      }
      case 'security_mmap_file': {
        if (arg(0) === undefined || arg(1) === undefined) return this.process(event, this.head('❓ ', fn), '');
        // PROT_READ / PROT_WRITE / PROT_EXEC
        const prot = Number(arg(1)!.uint_arg ?? 0);
        const tag = `mmap-${prot & 1 ? 'r' : ''}${prot & 2 ? 'w' : ''}${prot & 4 ? 'x' : ''}`;
        return this.process(event, this.head('📝 ', tag), this.cyan(maybeQuote(text(nested(0, 'file_arg').path))));
      }
      case 'security_path_truncate':
      case 'security_file_truncate': {
        if (arg(0) === undefined) return this.process(event, this.head('❓ ', fn), '');
        const path = text(nested(0, fn === 'security_path_truncate' ? 'path_arg' : 'file_arg').path);
        return this.process(event, this.head('📝 ', 'truncate'), this.cyan(maybeQuote(path)));
      }
      default:
        return this.process(event, this.head('❓ ', 'syscall'), fn);
    }
  }

  tracepoint(event: Json): string | undefined {
    const subsys = text(event.subsys);
    const name = text(event.event);
    if (`${subsys}/${name}` !== 'raw_syscalls/sys_enter') {
      return this.process(event, this.head('⁉\uFE0F ', 'tracepoint'), subsys, name);
    }
    // Tetragon names the syscall from its tables; without them the number is shown (ABI-prefixed when given).
    const first = Array.isArray(event.args) ? asObject(event.args[0]) : undefined;
    const id = asObject(first?.syscall_id);
    const syscall = id !== undefined
      ? `${text(id.abi) === '' ? '' : `${text(id.abi)}/`}${numeric(id.id)}`
      : first?.long_arg !== undefined ? numeric(first.long_arg) : 'unknown';
    return this.process(event, this.head('☎  ', 'syscall'), syscall);
  }

  uprobe(event: Json): string | undefined {
    return this.process(event, this.head('🕵\uFE0F ', 'uprobe'), maybeQuote(text(event.path)), maybeQuote(text(event.symbol)));
  }

  usdt(event: Json): string | undefined {
    return this.process(event, this.head('🕵\uFE0F ', 'usdt'),
      maybeQuote(text(event.path)), maybeQuote(text(event.provider)), maybeQuote(text(event.name)));
  }

  lsm(event: Json): string | undefined {
    return this.process(event, this.head('🔒 ', 'LSM'), text(event.function_name));
  }

  loader(event: Json): string | undefined {
    const buildId = Buffer.from(text(event.buildid), 'base64').toString('hex');
    const path = this.paint('yellow', maybeQuote(text(event.path)));
    return this.process(event, this.head('🧬 ', 'loader'), (buildId === '' ? '' : `${buildId} `) + path);
  }

  throttle(event: Json): string {
    const kind = event.type === 'THROTTLE_START' ? this.paint('red', 'START')
      : event.type === 'THROTTLE_STOP' ? this.paint('green', 'STOP ') : '';
    return `${this.head('🧬 ', 'throttle', 'red')} ${kind} ${maybeQuote(text(event.cgroup))}`;
  }
}

const RENDERERS: Record<string, (line: Line, event: Json) => string | undefined> = {
  process_exec: (l, e) => l.exec(e),
  process_exit: (l, e) => l.exit(e),
  process_kprobe: (l, e) => l.kprobe(e),
  process_tracepoint: (l, e) => l.tracepoint(e),
  process_uprobe: (l, e) => l.uprobe(e),
  process_usdt: (l, e) => l.usdt(e),
  process_lsm: (l, e) => l.lsm(e),
  process_loader: (l, e) => l.loader(e),
  process_throttle: (l, e) => l.throttle(e),
};

/** An RFC 3339 time as Tetragon's compact timestamps show it: UTC with nine fractional digits. */
function nanoTimestamp(time: unknown): string {
  const m = typeof time === 'string' ? /^(.+?T\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/i.exec(time) : null;
  const ms = m === null ? NaN : Date.parse(`${m[1]}${m[3]}`);
  // No (valid) time: Go formats a nil Timestamp as the epoch.
  if (Number.isNaN(ms)) return '1970-01-01T00:00:00.000000000Z';
  return `${new Date(ms).toISOString().slice(0, 19)}.${(m![2] ?? '').padEnd(9, '0')}Z`;
}

/**
 * One GetEventsResponse in Tetragon's JSON shape as a compact line (no
 * newline), or undefined when it has no compact form: an event type the
 * encoder does not know, or an event without its process.
 */
export function formatCompact(json: Record<string, unknown>, opts: CompactOptions = {}): string | undefined {
  const line = new Line(paintWith(opts.color ?? false));
  for (const [field, render] of Object.entries(RENDERERS)) {
    const event = asObject(json[field]);
    if (event === undefined) continue;
    const out = render(line, event);
    if (out === undefined) return undefined;
    return opts.timestamps ? `${nanoTimestamp(json.time)} ${out}` : out;
  }
  return undefined;
}
