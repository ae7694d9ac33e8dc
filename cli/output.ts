/**
 * How every command speaks: human-readable text by default, one JSON document (or JSON lines for
 * streams) with `--json`, errors on stderr with their stable code. Only `main.ts` turns an error
 * into an exit code.
 */
import { HandoffError, toHandoffError } from '../protocol/errors.js';

export interface OutputOptions {
  json?: boolean;
}

/**
 * JSON text that a `--json` document carries as it is, not re-encoded: a signed payload, whose
 * numbers (`3.0`, integers beyond 2^53) JavaScript values cannot hold, so that what is printed
 * still verifies.
 */
export class RawJson {
  constructor(readonly text: string) {}
}

/** `JSON.stringify`, with each `RawJson` inside spliced in verbatim. */
export function stringifyWithRaw(data: unknown): string {
  const raws: string[] = [];
  // A placeholder no string of the data can equal: a NUL, then a fresh random nonce.
  const nonce = globalThis.crypto.randomUUID();
  const json = JSON.stringify(data, (_key, value: unknown) => (value instanceof RawJson ? `\u0000${nonce}:${raws.push(value.text) - 1}` : value));
  if (raws.length === 0) return json;
  // JSON.stringify writes the NUL as the six characters \u0000.
  return json.replace(new RegExp(`"\\\\u0000${nonce}:(\\d+)"`, 'g'), (_m, i: string) => raws[Number(i)] as string);
}

/** Writes a command's result: `human(data)` as text, or `data` as one JSON document. */
export function emit<T>(opts: OutputOptions, data: T, human: (data: T) => string): void {
  if (opts.json) process.stdout.write(`${stringifyWithRaw(data)}\n`);
  else {
    const text = human(data);
    if (text) process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  }
}

/** Prints an error to stderr in the chosen format and returns the exit code for it. */
export function reportError(err: unknown, opts: OutputOptions): number {
  if (err instanceof AlreadyReported) return err.error.exitCode;
  const e = toHandoffError(err);
  if (opts.json) process.stderr.write(`${JSON.stringify({ error: e.toJSON() })}\n`);
  else process.stderr.write(`error [${e.code}]: ${e.message}\n`);
  if (e.code === 'INTERNAL' && process.env.HANDOFF_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  return e.exitCode;
}

/**
 * Ends a command with the exit code of `error` when the command has already printed its outcome
 * (e.g. `verify` prints `SIGNATURE: …` as its result), so the error is not printed twice.
 */
export class AlreadyReported extends Error {
  constructor(readonly error: HandoffError) {
    super(error.message);
  }
}
