/**
 * Lines of a text stream, each bounded: a line longer than the bound is
 * skipped as it streams past, never held whole, and stands as null in the
 * output so that its number is still counted. "\n" ends a line; a "\r" just
 * before it is dropped (as readline's crlfDelay: Infinity does).
 */
export async function* boundedLines(input: AsyncIterable<string>, maxChars: number): AsyncGenerator<string | null> {
  let pending = '';
  let skipping = false;
  const finish = (piece: string): string | null => {
    if (skipping || pending.length + piece.length > maxChars) return null;
    const line = pending + piece;
    return line.endsWith('\r') ? line.slice(0, -1) : line;
  };
  for await (const chunk of input) {
    let start = 0;
    for (let end = chunk.indexOf('\n'); end !== -1; start = end + 1, end = chunk.indexOf('\n', start)) {
      yield finish(chunk.slice(start, end));
      pending = '';
      skipping = false;
    }
    if (skipping) continue;
    const rest = chunk.slice(start);
    if (pending.length + rest.length > maxChars) {
      skipping = true;
      pending = '';
    } else {
      pending += rest;
    }
  }
  if (skipping || pending !== '') yield finish('');
}
