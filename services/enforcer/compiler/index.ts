/**
 * The policy front end: Tetragon TracingPolicy YAML in, PolicyPrograms out.
 * parsePolicyDocuments checks syntax and structure, compilePolicy checks
 * meaning against the kernel, loadPolicyText does both for a whole text.
 * Every refusal is a PolicyError naming the field (and line).
 */
import type { PolicyProgram } from '../../lib/policy-program.js';
import { compileDocuments } from './compile.js';
import type { CompileEnv } from './env.js';
import { parsePolicyDocuments, type TracingPolicyDocument } from './parse.js';

export { PolicyError, formatPath, type FieldPath } from './errors.js';
export { parsePolicyDocuments, API_VERSION, POLICY_LIMITS, type TracingPolicyDocument } from './parse.js';
export { compilePolicy } from './compile.js';
export { defaultCompileEnv, readCompatSyscallNumbers, readSyscallNumbers, syscallNames, X86_64_UNNAMED_SYSCALLS, type CompileEnv } from './env.js';
export { parseTracepointFormat, type TracepointFormat, type TracepointField } from './tracepoint-format.js';
export { SPEC_SCHEMA_PATH } from './schema.js';
export type * from './spec-types.js';

/** Parses and compiles every document of `text`; the first problem refuses them all. */
export function loadPolicyText(text: string, env: CompileEnv, source?: string): { document: TracingPolicyDocument; program: PolicyProgram }[] {
  return compileDocuments(parsePolicyDocuments(text, source), env);
}
