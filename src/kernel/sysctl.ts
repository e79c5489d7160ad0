// Kernel settings under /proc/sys.
import { readFile, writeFile } from 'node:fs/promises';
import { ToolError } from './exec.js';

/** Writes `net/ipv4/ip_forward` = `1` and the like; throws ToolError naming the setting. */
export async function writeSysctl(path: string, value: string): Promise<void> {
  try {
    await writeFile(`/proc/sys/${path}`, value);
  } catch (e) {
    const name = path.replaceAll('/', '.');
    throw new ToolError({ code: 'TOOL_FAILED', what: `sysctl ${name}=${value}`, reason: e instanceof Error ? e.message : String(e), command: `write /proc/sys/${path}`, cause: e });
  }
}

/** A setting's value, trimmed; undefined when it cannot be read (module not loaded, no such setting). */
export async function readSysctl(path: string): Promise<string | undefined> {
  try {
    return (await readFile(`/proc/sys/${path}`, 'utf8')).trim();
  } catch {
    return undefined;
  }
}
