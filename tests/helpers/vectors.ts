import { readFileSync } from 'node:fs';

/** One test vector produced by the reference Python implementation (gptme-voice). */
export interface Vector {
  name: string;
  listener_agent: string;
  secret_b64: string;
  validate_at: string;
  file_text: string;
  expect_valid: boolean;
  expect_reason_class: string;
}

/** The reference vectors copied from shared/vectors into tests/fixtures. */
export function loadVectors(): Vector[] {
  const url = new URL('../fixtures/gptme-voice-v1.json', import.meta.url);
  return (JSON.parse(readFileSync(url, 'utf8')) as { vectors: Vector[] }).vectors;
}
