/**
 * `chunks` as they stream to a tool or printer, counted on the way: the payload is generated once, and its
 * size is known afterwards. Each iteration starts the count again (an error report iterates a second time).
 */
export function countedChunks(chunks: Iterable<string>): { readonly chunks: Iterable<string>; bytes(): number } {
  let bytes = 0;
  return {
    chunks: {
      *[Symbol.iterator]() {
        bytes = 0;
        for (const c of chunks) {
          bytes += c.length;
          yield c;
        }
      },
    },
    bytes: () => bytes,
  };
}
