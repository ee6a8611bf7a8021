/** The message of anything thrown (an Error's message, else the value as text). */
export function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
