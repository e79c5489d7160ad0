// Boots the Debian 6.1 kernel that test/vm/prepare.sh caches under QEMU (TCG: the host has no IPVS and nested
// KVM hangs) and runs scripts inside it. The guest's root is the host's root, read-only over virtio-9p under a
// tmpfs overlay, so node, the tools and this checkout sit at the same paths as on the host.
//
// Command channel: QEMU's stdin/stdout are a virtio-serial port (sb.cmd) to test/vm/guest-agent.mjs, one JSON
// object per line each way (see that file). The kernel console goes to a separate serial port logged to a
// file, so console noise never mixes with command output; its tail is shown when a boot fails.
// The guest has no network device: nothing it does reaches the host's network.
//
// What a guest script sees: the host's files as they are (the checkout, node, node_modules, dist), writable
// but with every write kept in the guest's memory; its own fresh /tmp, /run and /var/tmp (so a file the host
// writes to its /tmp is NOT visible: pass data with exec's `input`, or write it under the checkout); root;
// all modules of the cached kernel, preloaded or autoloaded; and the guest's own network namespaces.
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface VmExecResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface VmExecOptions {
  /** Milliseconds before the guest kills the script's process group (default 60 s). */
  timeoutMs?: number;
  /** Written to the script's stdin (otherwise stdin is /dev/null). */
  input?: string;
}

export interface Vm {
  /** Runs a bash script inside the guest (host root's filesystem, cwd = the repo root, PATH with the host's node). */
  exec(script: string, opts?: VmExecOptions): Promise<VmExecResult>;
  /** Kills QEMU and removes temp files. Idempotent. */
  close(): Promise<void>;
  /** The guest kernel's `uname -r`. */
  readonly kernelRelease: string;
  /** Milliseconds from spawning QEMU to the guest agent's first message. */
  readonly bootMs: number;
  /** The guest's serial console log (kernel and init messages); removed by close(). */
  readonly consoleLogPath: string;
}

export interface BootOptions {
  /** Guest memory (default 2048); the overlay's writes and /tmp live in it too. */
  memoryMb?: number;
  /**
   * Emulated CPUs (default 1). On the busy 2-core machines measured, a second vCPU made process starts about
   * three times slower (multi-threaded TCG contends with the host's other work) and booting slower too.
   */
  cpus?: number;
  /** Milliseconds until the guest agent must have answered (default 90 s). */
  bootTimeoutMs?: number;
}

/** What prepare.sh writes to the cache's manifest.json. */
interface VmManifest {
  readonly package: string;
  readonly version: string;
  readonly kernelRelease: string;
  readonly vmlinuz: string;
  readonly initramfs: string;
  readonly modulesDir: string;
}

/** A script that the guest killed at its timeout; carries what it printed until then. */
export class VmExecTimeoutError extends Error {
  constructor(
    readonly timeoutMs: number,
    readonly script: string,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(
      `vm.exec: the script timed out after ${timeoutMs} ms in the guest and its process group was killed\n` +
        `script: ${excerpt(script, 300)}\nstdout so far: ${excerpt(stdout, 1000)}\nstderr so far: ${excerpt(stderr, 1000)}`,
    );
    this.name = 'VmExecTimeoutError';
  }
}

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
const GUEST_INIT = join(REPO_ROOT, 'test/vm/guest-init.sh');
const GUEST_AGENT = join(REPO_ROOT, 'test/vm/guest-agent.mjs');
const QEMU = 'qemu-system-x86_64';
const PREPARE_HINT = 'run test/vm/prepare.sh (as root) to install QEMU and build the kernel cache';
const DEFAULT_EXEC_TIMEOUT_MS = 60_000;
/** The host gives the guest this much beyond a script's own timeout before it declares the agent wedged. */
const HOST_GRACE_MS = 30_000;
const CONSOLE_TAIL_LINES = 60;

export function vmCacheDir(): string {
  return process.env['SWITCHBOARD_VM_CACHE'] ?? '/var/cache/switchboard-vm';
}

function excerpt(text: string, max: number): string {
  const t = text.trimEnd();
  return t.length <= max ? JSON.stringify(t) : `${JSON.stringify(t.slice(0, max))}… (${t.length} chars)`;
}

function findOnPath(tool: string): string | null {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, tool);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this dir.
    }
  }
  return null;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function readManifest(): VmManifest {
  const path = join(vmCacheDir(), 'manifest.json');
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const fields = ['package', 'version', 'kernelRelease', 'vmlinuz', 'initramfs', 'modulesDir'] as const;
  if (!isRecord(parsed)) throw new Error(`${path} is not a JSON object`);
  const bad = fields.filter((f) => typeof parsed[f] !== 'string');
  if (bad.length > 0) throw new Error(`${path} lacks ${bad.join(', ')}`);
  const m = parsed as Record<(typeof fields)[number], string>;
  return {
    package: m.package,
    version: m.version,
    kernelRelease: m.kernelRelease,
    vmlinuz: m.vmlinuz,
    initramfs: m.initramfs,
    modulesDir: m.modulesDir,
  };
}

/**
 * Throws (never skips) when the harness cannot run, naming what is missing: a green run that booted no VM
 * would claim IPVS coverage it does not have.
 */
export function requireVmPrereqs(): void {
  const problems: string[] = [];
  if (findOnPath(QEMU) === null) problems.push(`${QEMU} is not on PATH (Debian package qemu-system-x86)`);
  let manifest: VmManifest | null = null;
  try {
    manifest = readManifest();
  } catch (e) {
    problems.push(`no kernel cache in ${vmCacheDir()} (${e instanceof Error ? e.message : String(e)})`);
  }
  if (manifest !== null) {
    for (const [what, path] of [
      ['kernel', manifest.vmlinuz],
      ['initramfs', manifest.initramfs],
      ['modules.dep', join(manifest.modulesDir, 'modules.dep')],
    ] as const) {
      if (!existsSync(path)) problems.push(`the cached ${what} ${path} is missing`);
    }
  }
  for (const path of [GUEST_INIT, GUEST_AGENT]) if (!existsSync(path)) problems.push(`${path} is missing`);
  // The kernel command line carries these paths and QEMU options carry the temp dir: no spaces or commas.
  if (/[\s,]/.test(REPO_ROOT)) problems.push(`the checkout path ${JSON.stringify(REPO_ROOT)} contains a space or comma`);
  if (/[\s,]/.test(process.execPath)) problems.push(`node's path ${JSON.stringify(process.execPath)} contains a space or comma`);
  if (problems.length > 0) {
    throw new Error(`VM harness prerequisites not met: ${problems.join('; ')}. To fix: ${PREPARE_HINT}.`);
  }
}

// Every live QEMU and temp dir, so that a test process that exits without close() leaves nothing behind.
const live = new Map<ChildProcess, string>();
let exitHookInstalled = false;
function track(qemu: ChildProcess, dir: string): void {
  live.set(qemu, dir);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const [child, tmp] of live) {
      child.kill('SIGKILL');
      rmSync(tmp, { recursive: true, force: true });
    }
  });
}

const TEMP_PREFIX = 'switchboard-vm-';
const OWNER_FILE = 'owner.pid';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes temp dirs of test processes that were SIGKILLed (no exit hook ran); their QEMU died with them. */
async function sweepStaleTempDirs(): Promise<void> {
  const base = tmpdir();
  for (const name of await readdir(base).catch(() => [])) {
    if (!name.startsWith(TEMP_PREFIX)) continue;
    const dir = join(base, name);
    const owner = Number.parseInt(await readFile(join(dir, OWNER_FILE), 'utf8').catch(() => ''), 10);
    if (Number.isInteger(owner) && !alive(owner)) await rm(dir, { recursive: true, force: true });
  }
}

async function consoleTail(path: string): Promise<string> {
  try {
    const lines = (await readFile(path, 'utf8')).replace(/\r/g, '').trimEnd().split('\n');
    return lines.slice(-CONSOLE_TAIL_LINES).join('\n');
  } catch (e) {
    return `(no console log: ${e instanceof Error ? e.message : String(e)})`;
  }
}

interface Pending {
  readonly script: string;
  readonly timeoutMs: number;
  readonly resolve: (r: VmExecResult) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** Boots a VM and waits until its agent answers. On any failure QEMU is killed and the console tail reported. */
export async function bootVm(opts: BootOptions = {}): Promise<Vm> {
  requireVmPrereqs();
  const manifest = readManifest();
  const memoryMb = opts.memoryMb ?? 2048;
  const cpus = opts.cpus ?? 1;
  const bootTimeoutMs = opts.bootTimeoutMs ?? 90_000;
  await sweepStaleTempDirs();
  const dir = await mkdtemp(join(tmpdir(), TEMP_PREFIX));
  await writeFile(join(dir, OWNER_FILE), String(process.pid));
  const consoleLog = join(dir, 'console.log');
  if (consoleLog.includes(',')) throw new Error(`temp dir ${dir} contains a comma, which QEMU options cannot carry`);

  const cmdline = [
    'console=ttyS0',
    // A guest panic (for example PID 1 dying) ends QEMU instead of rebooting (-no-reboot) or hanging.
    'panic=-1',
    'rdinit=/init',
    // Emulated CPUs: spectre mitigations only cost time here.
    'mitigations=off',
    // Read by stage 1 (the initramfs) and stage 2 (guest-init.sh) as environment variables.
    `sbinit=${GUEST_INIT}`,
    `sbrepo=${REPO_ROOT}`,
    `sbnode=${process.execPath}`,
    `sbmodules=${manifest.modulesDir}`,
    'sb9p=trans=virtio,version=9p2000.L,ro,msize=512000',
  ].join(' ');
  const qemuArgs = [
    '-accel', 'tcg',
    '-cpu', 'max',
    '-smp', String(cpus),
    '-m', String(memoryMb),
    // No default NIC, serial, monitor or display: the guest gets exactly the devices below.
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot', '-nic', 'none',
    '-kernel', manifest.vmlinuz,
    '-initrd', manifest.initramfs,
    '-append', cmdline,
    '-chardev', `file,id=console,path=${consoleLog}`,
    '-serial', 'chardev:console',
    '-fsdev', 'local,id=hostroot,path=/,readonly=on,multidevs=remap,security_model=none',
    '-device', 'virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot',
    '-device', 'virtio-serial-pci,id=vser',
    '-chardev', 'stdio,id=cmd,signal=off',
    '-device', 'virtserialport,bus=vser.0,chardev=cmd,name=sb.cmd',
  ];
  // setpriv's parent-death signal kills QEMU even when this process is SIGKILLed and no exit hook runs.
  const setpriv = findOnPath('setpriv');
  const [file, args] =
    setpriv === null ? [QEMU, qemuArgs] : [setpriv, ['--pdeathsig', 'KILL', '--', QEMU, ...qemuArgs]];
  const started = performance.now();
  const qemu = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  track(qemu, dir);

  let qemuStderr = '';
  qemu.stderr.setEncoding('utf8');
  qemu.stderr.on('data', (d: string) => {
    qemuStderr = (qemuStderr + d).slice(-4000);
  });
  // Writes to a QEMU that just died must surface as exec errors, not as an unhandled EPIPE.
  qemu.stdin.on('error', () => {});

  const pending = new Map<number, Pending>();
  let nextId = 1;
  let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  let closing: Promise<void> | null = null;
  const strayLines: string[] = [];
  let onReady: ((release: string) => void) | null = null;
  let onDeath: ((why: string) => void) | null = null;

  const exitPromise = new Promise<void>((resolve) => {
    qemu.on('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    });
    // A spawn failure emits 'error' and never 'exit'; close() must not wait for an exit that cannot come.
    qemu.on('error', (e) => {
      qemuStderr += `\ncannot run ${file}: ${e.message}`;
      if (qemu.pid === undefined) {
        exited = { code: null, signal: null };
        resolve();
      }
    });
  });

  const deathReason = (): string =>
    `QEMU exited (code ${String(exited?.code)}, signal ${String(exited?.signal)})` +
    (qemuStderr.trim() === '' ? '' : `; its stderr: ${qemuStderr.trim()}`);

  void exitPromise.then(async () => {
    if (closing !== null) return;
    const tail = await consoleTail(consoleLog);
    const why = `${deathReason()}\n--- guest console (last ${CONSOLE_TAIL_LINES} lines) ---\n${tail}`;
    onDeath?.(why);
    for (const [id, p] of pending) {
      clearTimeout(p.timer);
      pending.delete(id);
      p.reject(new Error(`vm.exec: ${why}\nscript: ${excerpt(p.script, 300)}`));
    }
  });

  // Only the new chunk is searched for newlines: a multi-megabyte answer arrives in many chunks.
  let partial = '';
  qemu.stdout.setEncoding('utf8');
  qemu.stdout.on('data', (chunk: string) => {
    let start = 0;
    let nl: number;
    while ((nl = chunk.indexOf('\n', start)) >= 0) {
      const line = partial + chunk.slice(start, nl);
      partial = '';
      start = nl + 1;
      if (line.trim() !== '') handleLine(line);
    }
    partial += chunk.slice(start);
  });

  function handleLine(line: string): void {
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      strayLines.push(line);
      return;
    }
    if (!isRecord(msg)) return;
    if (msg['t'] === 'ready') {
      onReady?.(typeof msg['release'] === 'string' ? msg['release'] : '');
    } else if (msg['t'] === 'result' && typeof msg['id'] === 'number') {
      const p = pending.get(msg['id']);
      if (p === undefined) return;
      pending.delete(msg['id']);
      clearTimeout(p.timer);
      const decode = (v: unknown): string => (typeof v === 'string' ? Buffer.from(v, 'base64').toString('utf8') : '');
      const stdout = decode(msg['stdout']);
      const stderr = decode(msg['stderr']);
      if (msg['timedOut'] === true) p.reject(new VmExecTimeoutError(p.timeoutMs, p.script, stdout, stderr));
      else if (typeof msg['error'] === 'string') p.reject(new Error(`vm.exec: the guest agent could not run the script: ${msg['error']}`));
      else p.resolve({ exitCode: typeof msg['exitCode'] === 'number' ? msg['exitCode'] : -1, stdout, stderr });
    } else if (msg['t'] === 'log') {
      strayLines.push(`agent: ${String(msg['message'])}`);
    }
  }

  const close = (): Promise<void> => {
    closing ??= (async () => {
      if (exited === null) qemu.kill('SIGKILL');
      await exitPromise;
      live.delete(qemu);
      for (const [id, p] of pending) {
        clearTimeout(p.timer);
        pending.delete(id);
        p.reject(new Error(`vm.exec: the VM was closed while the script ran: ${excerpt(p.script, 300)}`));
      }
      await rm(dir, { recursive: true, force: true });
    })();
    return closing;
  };

  let kernelRelease: string;
  try {
    kernelRelease = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the guest agent did not start within ${bootTimeoutMs} ms`)), bootTimeoutMs);
      onReady = (release) => {
        clearTimeout(timer);
        resolve(release);
      };
      onDeath = (why) => {
        clearTimeout(timer);
        reject(new Error(why));
      };
    });
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    const tail = await consoleTail(consoleLog);
    await close();
    throw new Error(
      `bootVm failed: ${reason}` +
        (reason.includes('--- guest console') ? '' : `\n--- guest console (last ${CONSOLE_TAIL_LINES} lines) ---\n${tail}`) +
        (strayLines.length > 0 ? `\n--- unexpected output on the command channel ---\n${strayLines.slice(-10).join('\n')}` : ''),
    );
  }
  const bootMs = Math.round(performance.now() - started);
  onReady = null;
  onDeath = null;

  const exec = (script: string, execOpts: VmExecOptions = {}): Promise<VmExecResult> => {
    if (closing !== null) return Promise.reject(new Error('vm.exec: the VM is closed'));
    if (exited !== null) return Promise.reject(new Error(`vm.exec: ${deathReason()}`));
    const timeoutMs = execOpts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
    const id = nextId++;
    return new Promise<VmExecResult>((resolve, reject) => {
      // Backstop for a wedged guest: the guest enforces timeoutMs itself and answers with timedOut.
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(
          new Error(
            `vm.exec: no answer from the guest agent ${timeoutMs + HOST_GRACE_MS} ms after sending the script ` +
              `(its own timeout was ${timeoutMs} ms); the guest is probably wedged. script: ${excerpt(script, 300)}`,
          ),
        );
      }, timeoutMs + HOST_GRACE_MS);
      pending.set(id, { script, timeoutMs, resolve, reject, timer });
      const request = { t: 'exec', id, script, input: execOpts.input ?? null, timeoutMs };
      qemu.stdin.write(`${JSON.stringify(request)}\n`);
    });
  };

  return { exec, close, kernelRelease, bootMs, consoleLogPath: consoleLog };
}

/** The fields of vitest's JSON reporter (Jest's format) a caller needs. */
export type VitestTestStatus = 'passed' | 'failed' | 'skipped' | 'pending' | 'todo' | 'disabled';

export interface VitestAssertionResult {
  readonly ancestorTitles: readonly string[];
  readonly fullName: string;
  readonly title: string;
  readonly status: VitestTestStatus;
  readonly failureMessages: readonly string[];
}

export interface VitestFileResult {
  /** The test file's absolute path. */
  readonly name: string;
  readonly status: 'passed' | 'failed';
  /** A file-level failure (for example an import error), empty otherwise. */
  readonly message: string;
  readonly assertionResults: readonly VitestAssertionResult[];
}

export interface VitestJsonReport {
  readonly success: boolean;
  readonly numTotalTests: number;
  readonly numPassedTests: number;
  readonly numFailedTests: number;
  readonly numPendingTests: number;
  readonly numTodoTests: number;
  readonly testResults: readonly VitestFileResult[];
}

export interface RunVitestOptions {
  /** A vitest config path relative to the repo root, e.g. test/vm/vitest.guest.config.ts. */
  config: string;
  /** Test file filters, as on vitest's command line. */
  files?: readonly string[];
  timeoutMs?: number;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Runs the repo's vitest inside the guest and returns its JSON report. The guest's node_modules is the
 * host's (read-only below the overlay), so vitest's cache and temp files go to the guest's tmpfs.
 * Throws only when vitest produced no report; failing tests come back in the report.
 */
export async function runVitestInVm(vm: Vm, opts: RunVitestOptions): Promise<VitestJsonReport> {
  const args = ['run', '--config', opts.config, '--reporter=json', '--outputFile="$out/report.json"'];
  const script = [
    'out=$(mktemp -d /tmp/vitest-run.XXXXXX)',
    'mkdir -p "$out/tmp"',
    // The report is the only thing on stdout; vitest's own output goes to stderr for error messages.
    `TMPDIR="$out/tmp" NO_COLOR=1 node node_modules/vitest/vitest.mjs ${args.join(' ')} ` +
      `${(opts.files ?? []).map(shellQuote).join(' ')} >"$out/log" 2>&1`,
    'rc=$?',
    'cat "$out/log" >&2',
    'cat "$out/report.json" 2>/dev/null || exit 70',
    'exit $rc',
  ].join('\n');
  const r = await vm.exec(script, { timeoutMs: opts.timeoutMs ?? 300_000 });
  let parsed: unknown;
  try {
    parsed = JSON.parse(r.stdout);
  } catch {
    throw new Error(
      `runVitestInVm: vitest (exit ${r.exitCode}) wrote no JSON report for ${opts.config}\n` +
        `--- vitest output ---\n${r.stderr.slice(-4000)}`,
    );
  }
  if (!isRecord(parsed) || !Array.isArray(parsed['testResults'])) {
    throw new Error(`runVitestInVm: vitest's report has no testResults: ${r.stdout.slice(0, 500)}`);
  }
  return parsed as unknown as VitestJsonReport;
}
