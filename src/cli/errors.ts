/** Bad flags or input: the CLI exits 2 with this message. */
export class UsageError extends Error {
  override name = 'UsageError';
}
