import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { keyFilePath, writeKeyFile } from '../../protocol/index.js';

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

/**
 * Writes what `handoff verify` needs for `v` into `dir`: bob's pair secret as a key file (so `dir`
 * is the --keys directory) and the payload file; returns the payload file's path.
 */
export async function writeVectorFiles(dir: string, v: Vector): Promise<string> {
  await writeKeyFile(keyFilePath(dir, 'bob'), Buffer.from(v.secret_b64, 'base64').toString('utf8'));
  const file = path.join(dir, `${v.name}.json`);
  await writeFile(file, v.file_text);
  return file;
}

/** The reference vectors copied from shared/vectors into tests/fixtures. */
export function loadVectors(): Vector[] {
  const url = new URL('../fixtures/gptme-voice-v1.json', import.meta.url);
  return (JSON.parse(readFileSync(url, 'utf8')) as { vectors: Vector[] }).vectors;
}
