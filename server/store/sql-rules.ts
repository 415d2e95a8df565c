/**
 * Rules that SQL and TypeScript must state alike, each stated once here: when a message still
 * holds its content, and which key names a pair's one direct conversation.
 */

/**
 * The SQL test that message `m` still holds its content. RETENTION=until-delivered empties a
 * delivered message's body (an empty bytea, the tombstone) and keeps its row for its seq and
 * receipts; an emptied message is read as absent.
 */
export const HAS_CONTENT = 'octet_length(m.body) > 0';

/** The TypeScript form of HAS_CONTENT: false for a message emptied once delivered (its tombstone). */
export function hasContent(message: { body: Uint8Array }): boolean {
  return message.body.length > 0;
}

/** The key of the one direct conversation of a pair (conversations.direct_key): "low:high". */
export function directKey(a: number, b: number): string {
  return a < b ? `${a}:${b}` : `${b}:${a}`;
}

/** directKey in SQL, for two bigint expressions (a row's user beside a parameter). */
export function directKeySql(a: string, b: string): string {
  return `(least(${a}, ${b}) || ':' || greatest(${a}, ${b}))`;
}
