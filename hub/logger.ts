/**
 * The hub's pino logger. The hub never passes tokens, headers, payloads, transcripts or numbers to
 * the logger in the first place; the redaction list is the second line of defence, for a field
 * that someone adds to a log call later.
 */
import pino, { type DestinationStream, type Logger } from 'pino';

/** Field paths censored in every log line. */
export const REDACT_PATHS: readonly string[] = Object.freeze([
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  '*.authorization',
  'token',
  '*.token',
  'claim_token',
  '*.claim_token',
  'secret',
  '*.secret',
  'transcript',
  '*.transcript',
  'final_transcript',
  '*.final_transcript',
  'callback_number',
  '*.callback_number',
  'payload',
  '*.payload',
  'notes',
  '*.notes',
]);

export interface HubLoggerOptions {
  level?: string;
  /** Where lines go (default stdout); tests pass a stream that collects them. */
  destination?: DestinationStream;
}

/** A JSON logger with the hub's redaction rules. */
export function createHubLogger(options: HubLoggerOptions = {}): Logger {
  const config = {
    level: options.level ?? 'info',
    base: { component: 'hub' },
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
  };
  return options.destination === undefined ? pino(config) : pino(config, options.destination);
}
