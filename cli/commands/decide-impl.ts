import { readFile } from 'node:fs/promises';
import { PolicyEngine, toStartFields } from '../../policy/index.js';
import type { Decision, Evidence, Signals, StartFields } from '../../policy/index.js';
import { HandoffError, toHandoffError } from '../../protocol/errors.js';
import type { ErrorCode } from '../../protocol/errors.js';
import { parseJson, toJs } from '../../protocol/index.js';

export interface DecideResult {
  readonly decision: Decision;
  /** The `handoff start` fields, or why there are none. */
  readonly start: StartFields | { readonly none: string };
}

async function readText(file: string, what: string, code: ErrorCode, stdin: () => Promise<string>): Promise<string> {
  if (file === '-') return stdin();
  try {
    return await readFile(file, 'utf8');
  } catch (cause) {
    throw new HandoffError(code, `cannot read the ${what} file ${file}`, { cause });
  }
}

/** Parses with our parser: its messages give the offset, never a piece of a transcript. */
function parseDocument(text: string, what: string, code: ErrorCode): unknown {
  try {
    return toJs(parseJson(text));
  } catch (cause) {
    throw new HandoffError(code, `the ${what} is not valid JSON: ${(cause as Error).message}`, { cause });
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Reads the policy (CONFIG when missing or invalid), the transcript and the signals (USAGE when
 * unreadable, SCHEMA when invalid) and decides. A transcript file may be the list of turns or a
 * payload, whose `transcript` is used.
 */
export async function decideFromFiles(
  flags: { policy: string; transcript: string; signals?: string },
  stdin: () => Promise<string> = readStdin,
): Promise<DecideResult> {
  if (flags.transcript === '-' && flags.signals === '-') {
    throw new HandoffError('USAGE', 'only one of --transcript and --signals can read stdin');
  }
  if (flags.policy === '-') throw new HandoffError('USAGE', '--policy must name a file');
  const engine = new PolicyEngine(parseDocument(await readText(flags.policy, 'policy', 'CONFIG', stdin), 'policy', 'CONFIG'));
  const doc = parseDocument(await readText(flags.transcript, 'transcript', 'USAGE', stdin), 'transcript', 'SCHEMA');
  const transcript = typeof doc === 'object' && doc !== null && !Array.isArray(doc) && 'transcript' in doc ? doc.transcript : doc;
  const signals =
    flags.signals === undefined ? {} : parseDocument(await readText(flags.signals, 'signals', 'USAGE', stdin), 'signals', 'SCHEMA');
  const decision = engine.decide(transcript, signals);
  // decide() has validated the signals, so they are what the type says.
  const valid = signals as Signals;
  let start: DecideResult['start'];
  try {
    start = toStartFields(decision, { fromAgent: engine.currentAgent(valid), ...(valid.hop === undefined ? {} : { hop: valid.hop }) });
  } catch (err) {
    start = { none: toHandoffError(err).message };
  }
  return { decision, start };
}

function describeEvidence(e: Evidence): string {
  if (e.kind === 'signal') return e.threshold === undefined ? `${e.signal} ${e.value}` : `${e.signal} ${e.value} (limit ${e.threshold})`;
  return `"${e.words}" (turn ${e.turn})`;
}

/** The human-readable form: the decision, every matched rule with its evidence, the start fields. */
export function renderDecision({ decision, start }: DecideResult): string {
  const head = decision.target === undefined ? decision.action : `${decision.action} → ${decision.target}`;
  const lines = [`${head}  (reason ${decision.reason_code}, priority ${decision.priority}, confidence ${decision.confidence})`];
  if (decision.matched.length > 0) {
    lines.push('matched:');
    for (const m of decision.matched) {
      const action = m.target === undefined ? m.action : `${m.action} → ${m.target}`;
      const rank = m.rule_priority === undefined ? 'guard' : String(m.rule_priority);
      lines.push(`  ${rank.padStart(5)}  ${m.rule} (${m.type}): ${action}; ${m.evidence.map(describeEvidence).join(', ')}`);
    }
  }
  if ('none' in start) {
    lines.push(`handoff start: none (${start.none})`);
  } else {
    lines.push('handoff start:');
    for (const [key, value] of Object.entries(start)) lines.push(`  ${key.padEnd(11)} ${String(value)}`);
  }
  return lines.join('\n');
}
