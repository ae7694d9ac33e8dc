/**
 * The bootstrap file: how an accepted handoff reaches the target's voice server.
 *
 * gptme-voice's voice server reads `<state dir>/handoffs/<id>.json`, where `<id>` is the handoff
 * id with everything but letters, digits, `-` and `_` removed, and uses it only if it has
 * `protocol_version: 1`, `source: "voice_handoff"`, an `accepted_at` no older than its resume
 * window (300 s by default) and a non-empty `resume_context`, which it puts in front of the model's
 * instructions; it deletes the file once read. Those fields come first; the full context follows
 * for voice servers that want structure rather than prose.
 *
 * The file is written atomically (temporary file, fsync, rename, directory fsync) before any call
 * is placed, so the voice server never sees half a file and always has it when the caller answers.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { HandoffError, isoMillis, parseIsoTime, PROTOCOL_VERSION, sanitizeId, type ParsedPayload } from '../protocol/index.js';

export const BOOTSTRAP_SOURCE = 'voice_handoff';
/** gptme-voice's default resume window. */
export const DEFAULT_RESUME_WINDOW_SEC = 300;

const MAX_TURNS = 24;
const MAX_TURN_CHARS = 400;
const MAX_CONTEXT_CHARS = 6000;

export interface BootstrapFile {
  protocol_version: 1;
  source: typeof BOOTSTRAP_SOURCE;
  accepted_at: string;
  resume_context: string;
  handoff_id: string;
  from_agent: string;
  to_agent: string;
  reason: string;
  resume_hint?: string;
  context_summary?: string;
  transcript: ParsedPayload['transcript'];
  pending_actions?: ParsedPayload['pending_actions'];
  consent?: ParsedPayload['consent'];
  caller_hash: string;
  channel?: ParsedPayload['channel'];
  call_sid?: string;
  priority?: ParsedPayload['priority'];
}

function titleCase(name: string): string {
  return name.charAt(0).toUpperCase() + name.slice(1);
}

/** `scheduling_capability` → `scheduling capability`. */
export function humanizeReason(reason: string): string {
  return reason.replace(/[_-]+/g, ' ').trim() || 'an unspecified reason';
}

function clip(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}

function describeAction(action: { kind: string; [k: string]: unknown }): string {
  const details = Object.entries(action)
    .filter(([k, v]) => k !== 'kind' && v !== null && v !== undefined && v !== '')
    .map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return details.length ? `${humanizeReason(action.kind)} (${details.join(', ')})` : humanizeReason(action.kind);
}

/**
 * The prose put in front of the target model's instructions: who handed over and why, the
 * summary, the conversation so far (the most recent turns), what is still pending, and how to
 * open — with the resume hint as the first sentence and an explicit instruction not to make the
 * caller repeat anything the transcript already says.
 */
export function composeResumeContext(payload: ParsedPayload, selfName: string): string {
  const from = titleCase(payload.from_agent);
  const me = titleCase(selfName);
  const lines: string[] = [
    `You are ${me}. You are taking over a phone conversation that ${from} handed to you (reason: ${humanizeReason(payload.reason)}). You are calling the caller back now; they already spoke with ${from}.`,
  ];
  if (payload.context_summary) lines.push('', `Summary from ${from}: ${clip(payload.context_summary, 1200)}`);
  const turns = payload.transcript.slice(-MAX_TURNS);
  if (turns.length > 0) {
    const skipped = payload.transcript.length - turns.length;
    lines.push('', `What the caller and ${from} already said${skipped > 0 ? ` (last ${turns.length} of ${payload.transcript.length} turns)` : ''}:`);
    for (const turn of turns) {
      const who = turn.role === 'user' ? 'Caller' : turn.role === 'assistant' ? from : 'System';
      lines.push(`- ${who}: ${clip(turn.text, MAX_TURN_CHARS)}`);
    }
  }
  if (payload.pending_actions?.length) {
    lines.push('', 'Still to do for the caller:');
    for (const action of payload.pending_actions) lines.push(`- ${describeAction(action)}`);
  }
  lines.push('', 'How to open:');
  if (payload.resume_hint) lines.push(`- Start with this sentence (adapt only if it would sound wrong): "${clip(payload.resume_hint, 500)}"`);
  else lines.push(`- Greet the caller as ${me}, say ${from} passed you the context, and continue where they left off.`);
  lines.push(
    '- Do not ask the caller to repeat anything the conversation above already answers; confirm briefly instead.',
    `- If something is unclear, ask one specific question rather than starting over.`,
  );
  const text = lines.join('\n');
  return text.length <= MAX_CONTEXT_CHARS ? text : `${text.slice(0, MAX_CONTEXT_CHARS - 1)}…`;
}

/** The bootstrap document for an accepted payload. */
export function buildBootstrap(payload: ParsedPayload, acceptedAtMs: number): BootstrapFile {
  return {
    protocol_version: PROTOCOL_VERSION,
    source: BOOTSTRAP_SOURCE,
    accepted_at: isoMillis(acceptedAtMs),
    resume_context: composeResumeContext(payload, payload.to_agent),
    handoff_id: payload.handoff_id,
    from_agent: payload.from_agent,
    to_agent: payload.to_agent,
    reason: payload.reason,
    resume_hint: payload.resume_hint,
    context_summary: payload.context_summary,
    transcript: payload.transcript,
    pending_actions: payload.pending_actions,
    consent: payload.consent,
    caller_hash: payload.caller_hash,
    channel: payload.channel,
    call_sid: payload.call_sid,
    priority: payload.priority,
  };
}

/** Where gptme-voice looks for the bootstrap file of `handoffId` inside `dir`. */
export function bootstrapPath(dir: string, handoffId: string): string {
  const name = sanitizeId(handoffId);
  if (!name) throw new HandoffError('INVALID_ID', 'handoff id has no usable characters for a file name');
  return path.join(dir, `${name}.json`);
}

/**
 * Refuses (CONFIG) a directory that every user may write: another user could plant files the
 * listener or the voice server then trust (bootstrap files, journals, the opt-out list), or take
 * a file's name first. A directory not there yet is fine: it is created 0700.
 */
export async function assertPrivateDir(dir: string, what: string): Promise<void> {
  let st;
  try {
    st = await fs.stat(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new HandoffError('IO', `cannot look at the ${what} ${dir}`, { cause: err });
  }
  if (!st.isDirectory()) throw new HandoffError('CONFIG', `the ${what} ${dir} is not a directory`);
  if ((st.mode & 0o002) !== 0) throw new HandoffError('CONFIG', `the ${what} ${dir} is writable by every user (chmod o-w ${dir})`);
}

/**
 * Writes `content` to `file` atomically and durably: temporary file in the same directory, fsync,
 * rename, directory fsync. The mode applies from creation (no window with wider permissions).
 * @throws HandoffError IO when any step fails; the target file is then unchanged.
 */
export async function writeFileAtomic(file: string, content: string, mode = 0o600): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    const handle = await fs.open(tmp, 'wx', mode);
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, file);
    const dirHandle = await fs.open(dir, 'r');
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
  } catch (cause) {
    await fs.rm(tmp, { force: true });
    throw new HandoffError('IO', `cannot write ${file}`, { cause });
  }
}

/** Writes the bootstrap file for an accepted payload; returns its path. */
export async function writeBootstrap(dir: string, payload: ParsedPayload, acceptedAtMs: number): Promise<string> {
  const file = bootstrapPath(dir, payload.handoff_id);
  await writeFileAtomic(file, `${JSON.stringify(buildBootstrap(payload, acceptedAtMs), null, 2)}\n`);
  return file;
}

/**
 * Reads a bootstrap file the way gptme-voice does (for TypeScript voice servers): undefined when
 * it is missing, not ours, stale or empty. It does not delete the file; the caller decides.
 */
export async function readBootstrap(
  file: string,
  opts: { nowMs: number; resumeWindowSec?: number },
): Promise<BootstrapFile | undefined> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  let doc: Partial<BootstrapFile>;
  try {
    doc = JSON.parse(text) as Partial<BootstrapFile>;
  } catch {
    return undefined;
  }
  if (doc.protocol_version !== PROTOCOL_VERSION || doc.source !== BOOTSTRAP_SOURCE) return undefined;
  if (typeof doc.resume_context !== 'string' || doc.resume_context.trim() === '') return undefined;
  const accepted = typeof doc.accepted_at === 'string' ? parseIsoTime(doc.accepted_at) : undefined;
  if (accepted === undefined) return undefined;
  const windowMs = (opts.resumeWindowSec ?? DEFAULT_RESUME_WINDOW_SEC) * 1000;
  if (opts.nowMs - accepted > windowMs) return undefined;
  return doc as BootstrapFile;
}
