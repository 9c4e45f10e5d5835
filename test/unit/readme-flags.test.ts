/**
 * The README's flags against the built command: every flag the README
 * documents for a command is listed by that command's --help and accepted by
 * its parser. No root, no kernel: only `vigil CMD --help` runs.
 *
 * Which command a flag belongs to (the README is written to this rule):
 * - In a ```sh block, a line running `node bin/vigil.js CMD ...` (or
 *   `npm start -- ...`, which runs package.json's start script) documents the
 *   flags on that line, up to a `#` comment or a ` | ` pipe, for CMD. For
 *   `policy`, the first argument documents subcommands (`a|b` for several).
 * - A prose paragraph that begins with "`vigil A` flags:" or "`vigil A` and
 *   `vigil B` flags ...:" documents every `--flag` in it for those commands.
 * - A `--flag` anywhere else in the prose is attributed to nothing: a failure.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../services/lib/paths.js';

interface Documented {
  /** `--long` or `-s`, each with the README line that documents it. */
  flags: Map<string, number>;
  subcommands: Map<string, number>;
}

const LONG_FLAG = /(?<![\w-])--[a-z][a-z0-9-]*/g;
const PARAGRAPH_LEAD = /^((?:`vigil [a-z]+`(?:, | and )?)+) flags\b/;

/** argv of `npm start --`: package.json's start script must run bin/vigil.js. */
function startScriptArgv(): string[] {
  const start = (JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts['start']!;
  const argv = start.trim().split(/\s+/);
  assert.deepEqual(argv.slice(0, 2), ['node', 'bin/vigil.js'], `package.json start script "${start}" does not run bin/vigil.js`);
  return argv.slice(2);
}

function parseReadme(text: string): { documented: Map<string, Documented>; unattributed: string[] } {
  const documented = new Map<string, Documented>();
  const entry = (command: string): Documented => {
    let d = documented.get(command);
    if (d === undefined) documented.set(command, d = { flags: new Map(), subcommands: new Map() });
    return d;
  };
  const unattributed: string[] = [];
  const startArgv = startScriptArgv();

  const codeLine = (line: string, lineNo: number): void => {
    for (const segment of line.replace(/(^|\s)#.*$/, '').split(/\s\|\s/)) {
      const words = segment.trim().split(/\s+/);
      let argv: string[];
      if (words[0] === 'node' && words[1] === 'bin/vigil.js') argv = words.slice(2);
      else if (words[0] === 'npm' && words[1] === 'start' && words[2] === '--') argv = [...startArgv, ...words.slice(3)];
      else continue;
      const [command, ...args] = argv;
      if (command === undefined) continue;
      const d = entry(command);
      for (const arg of args) {
        const flag = /^(--[a-z][a-z0-9-]*|-[A-Za-z])(=|$)/.exec(arg)?.[1];
        if (flag !== undefined) d.flags.set(flag, lineNo);
      }
      const sub = args[0];
      if (command === 'policy' && sub !== undefined && !sub.startsWith('-')) for (const s of sub.split('|')) d.subcommands.set(s, lineNo);
    }
  };

  const paragraph = (lines: string[], firstLineNo: number): void => {
    const text = lines.join('\n');
    const lead = PARAGRAPH_LEAD.exec(text);
    const commands = lead === null ? [] : [...lead[1]!.matchAll(/`vigil ([a-z]+)`/g)].map((m) => m[1]!);
    lines.forEach((line, i) => {
      for (const [flag] of line.matchAll(LONG_FLAG)) {
        if (commands.length === 0) unattributed.push(`README.md:${firstLineNo + i}: ${flag}`);
        for (const command of commands) entry(command).flags.set(flag, firstLineNo + i);
      }
    });
  };

  let fence: string | undefined;
  let prose: string[] = [];
  let proseStart = 0;
  const endParagraph = (): void => {
    if (prose.length > 0) paragraph(prose, proseStart);
    prose = [];
  };
  text.split('\n').forEach((line, i) => {
    const lineNo = i + 1;
    const fenceMark = /^```(\w*)/.exec(line);
    if (fenceMark !== null) {
      endParagraph();
      fence = fence === undefined ? fenceMark[1]! : undefined;
    } else if (fence === 'sh') {
      codeLine(line, lineNo);
    } else if (fence === undefined) {
      if (line.trim() === '') {
        endParagraph();
      } else {
        if (prose.length === 0) proseStart = lineNo;
        prose.push(line);
      }
    }
  });
  endParagraph();
  return { documented, unattributed };
}

interface Run { code: number | null; stdout: string; stderr: string }

function vigil(args: string[]): Promise<Run> {
  const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'vigil.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

/** The flags of a help text's flag table: rows `  -s, --long ...` or `      --long ...`. */
function helpFlags(help: string): Set<string> {
  const flags = new Set<string>();
  for (const [, short, long] of help.matchAll(/^ {2}(?:(-[A-Za-z]), | {4})(--[a-z][a-z0-9-]*)/gm)) {
    flags.add(long!);
    if (short !== undefined) flags.add(short);
  }
  return flags;
}

const { documented, unattributed } = parseReadme(fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8'));

test('README: every --flag in the prose is attributed to a command', () => {
  assert.deepEqual(unattributed, [], 'begin the paragraph with "`vigil CMD` flags:" or move the flag into a command line');
  assert.ok(documented.size > 0, 'no command found in README.md');
});

describe('README flags per command', { concurrency: true }, () => {
  for (const [command, { flags, subcommands }] of documented) {
    test(`README: vigil ${command} --help lists the documented flags and its parser takes them`, async () => {
      // `=true` is a value every flag kind takes; --help stops the command right after parsing.
      const [help, parse] = await Promise.all([
        vigil([command, '--help']),
        vigil([command, ...[...flags.keys()].map((flag) => `${flag}=true`), '--help']),
      ]);
      assert.equal(help.code, 0, `vigil ${command} --help failed: ${help.stderr}`);
      const listed = helpFlags(help.stdout);
      const missing = [...flags].filter(([flag]) => !listed.has(flag)).map(([flag, line]) => `vigil ${command} --help lacks ${flag} (README.md:${line})`);
      for (const [sub, line] of subcommands) {
        if (!new RegExp(`^ +vigil ${command} ${sub}\\b`, 'm').test(help.stdout)) missing.push(`vigil ${command} --help lacks subcommand ${sub} (README.md:${line})`);
      }
      assert.deepEqual(missing, []);
      assert.equal(parse.code, 0, `vigil ${command} rejects a flag README.md documents: ${parse.stderr.trim()}`);
    });
  }
});
