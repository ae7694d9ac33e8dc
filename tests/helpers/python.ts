import { spawnSync } from 'node:child_process';

/** True when a python3 interpreter is available to serve as the reference formulation. */
export const HAS_PYTHON = spawnSync('python3', ['-c', 'print(1)'], { encoding: 'utf8' }).stdout?.trim() === '1';

const PROGRAM = `
import json, sys
out = []
for text in json.load(sys.stdin):
    try:
        out.append(json.dumps(json.loads(text), sort_keys=True, separators=(",", ":")))
    except Exception as e:
        out.append(None)
json.dump(out, sys.stdout)
`;

/**
 * Python's canonical form (`json.dumps(json.loads(t), sort_keys=True, separators=(",",":"))`) of
 * each text, in one interpreter run; null where Python refuses the text.
 */
export function pythonCanonical(texts: string[]): Array<string | null> {
  const r = spawnSync('python3', ['-c', PROGRAM], { input: JSON.stringify(texts), encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`python3 failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Array<string | null>;
}

/** Python's `repr(float(s))` for each numeric text. */
export function pythonFloatReprs(lexemes: string[]): string[] {
  const program = 'import json,sys; json.dump([repr(float(s)) for s in json.load(sys.stdin)], sys.stdout)';
  const r = spawnSync('python3', ['-c', program], { input: JSON.stringify(lexemes), encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`python3 failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as string[];
}
