import type { ToolError } from '../kernel/exec.js';

/** A failed tool as the CLI prints it: the message, the tool's own words, and the input lines it pointed at. */
export function toolFailureText(e: ToolError): string {
  let text = `error: ${e.message}\n`;
  if (e.stderr) text += `${e.stderr}\n`;
  if (e.offendingLines.length > 0) text += `offending input:\n${e.offendingLines.join('\n')}\n`;
  return text;
}
