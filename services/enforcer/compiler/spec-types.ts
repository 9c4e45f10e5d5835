/**
 * A TracingPolicy spec as the schema (deploy/crds/tracingpolicy-spec.schema.json)
 * admits it, after the schema's defaults are applied: Tetragon's field names, with
 * Tetragon-only fields typed loosely because the compiler refuses them by name.
 * Numbers that may be written either way (matchArgs values, namespace inodes) stay
 * `string | number`; integers beyond 2^53 arrive as decimal strings.
 */

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export interface KProbeArg {
  index: number;
  /** One of Tetragon's argument types; 'auto' (the default) derives it from the format. */
  type: string;
  resolve?: string;
  sizeArgIndex?: number;
  returnCopy?: boolean;
  maxData?: boolean;
  label?: string;
  source?: string;
  btfType?: string;
  btfTypeModule?: string;
}

export interface ArgSelector {
  index?: number;
  args?: number[];
  operator: string;
  values?: (string | number)[];
}

export interface PIDSelector {
  operator: 'In' | 'NotIn';
  values: number[];
  isNamespacePID?: boolean;
  followForks?: boolean;
}

export interface BinarySelector {
  operator: 'In' | 'NotIn' | 'Prefix' | 'NotPrefix' | 'Postfix' | 'NotPostfix';
  values: string[];
  followChildren?: boolean;
}

export interface NamespaceSelector {
  namespace: 'Uts' | 'Ipc' | 'Mnt' | 'Pid' | 'PidForChildren' | 'Net' | 'Time' | 'TimeForChildren' | 'Cgroup' | 'User';
  operator: 'In' | 'NotIn';
  values: (string | number)[];
}

export interface NamespaceChangesSelector {
  operator: 'In' | 'NotIn';
  values: string[];
}

export interface CapabilitiesSelector {
  type: 'Effective' | 'Inheritable' | 'Permitted';
  operator: 'In' | 'NotIn';
  isNamespaceCapability?: boolean;
  values: string[];
}

export interface ActionSelector {
  action: string;
  argSig?: number;
  rateLimit?: string;
  rateLimitScope?: 'thread' | 'process' | 'global';
  kernelStackTrace?: boolean;
  userStackTrace?: boolean;
  imaHash?: boolean;
  argError?: number;
  argUrl?: string;
  argFqdn?: string;
  argSock?: number;
  argIndex?: number;
  argValue?: number;
  argRegs?: string[];
  argNewSymbol?: string;
  argNewAddr?: number;
  argNewOffset?: number;
}

export interface KProbeSelector {
  label?: string;
  matchPIDs?: PIDSelector[];
  matchArgs?: ArgSelector[];
  matchData?: unknown[];
  matchActions?: ActionSelector[];
  matchReturnArgs?: ArgSelector[];
  matchReturnActions?: unknown[];
  matchBinaries?: BinarySelector[];
  matchParentBinaries?: unknown[];
  matchNamespaces?: NamespaceSelector[];
  matchNamespaceChanges?: NamespaceChangesSelector[];
  matchCapabilities?: CapabilitiesSelector[];
  matchCapabilityChanges?: CapabilitiesSelector[];
  matchWorkloads?: unknown;
  macros?: string[];
}

interface HookCommon {
  message?: string;
  args?: KProbeArg[];
  selectors?: KProbeSelector[];
  tags?: string[];
}

export interface KProbeSpec extends HookCommon {
  call: string;
  /** Defaults to true, as in Tetragon's CRD. */
  syscall: boolean;
  return?: boolean;
  returnArg?: KProbeArg;
  data?: unknown[];
  returnArgAction?: string;
  ignore?: { callNotFound?: boolean };
}

export interface TracepointSpec extends HookCommon {
  subsystem: string;
  event: string;
  raw?: boolean;
}

export interface UProbeSpec extends HookCommon {
  path: string;
  symbols?: string[];
  return?: boolean;
  returnArg?: KProbeArg;
  btfPath?: string;
  offsets?: number[];
  addrs?: number[];
  refCtrOffsets?: number[];
  data?: unknown[];
  binaryDigests?: string[];
  ignore?: Record<string, unknown>;
}

export interface UsdtSpec extends HookCommon {
  path: string;
  provider: string;
  name: string;
}

export interface LsmHookSpec extends HookCommon {
  hook: string;
}

/** Tetragon's enforcer: the calls its NotifyEnforcer actions act in (syscalls, or "list:NAME"). */
export interface EnforcerSpec {
  calls: string[];
}

export interface ListSpec {
  name: string;
  type: 'syscalls' | 'generated_syscalls' | 'generated_ftrace';
  values?: string[];
  pattern?: string;
  validated?: boolean;
}

export interface OptionSpec {
  name: string;
  value?: string;
}

export interface TracingPolicySpec {
  kprobes?: KProbeSpec[];
  tracepoints?: TracepointSpec[];
  uprobes?: UProbeSpec[];
  options?: OptionSpec[];
  podSelector?: LabelSelector;
  containerSelector?: LabelSelector;
  lsmhooks?: LsmHookSpec[];
  usdts?: UsdtSpec[];
  fentries?: unknown[];
  lists?: ListSpec[];
  enforcers?: EnforcerSpec[];
  loader?: boolean;
  hostSelector?: LabelSelector;
  nodeSelector?: LabelSelector;
  selectorsMacros?: Record<string, unknown>;
}
