/**
 * A `Dialer` that sends nothing: it writes, line by line, exactly the requests the Twilio dialer
 * would send (method, API path, form fields in wire order, the TwiML included), answers with fake
 * SIDs, and reports a configurable outcome for every call. For demos and debugging; the CLI must
 * never pick it when Twilio credentials are configured.
 *
 * The parameters come from the same builders as the real dialer (`call-params.ts`), so what is
 * printed is what would be sent. Phone numbers are masked to their last two digits wherever they
 * appear, the TwiML's `from_number` parameter included.
 */
import { HandoffError } from '../protocol/index.js';
import {
  assertCallSid,
  callCreateOptions,
  callUpdateOptions,
  messageCreateOptions,
  toTwilioForm,
  TWILIO_PATHS,
} from './call-params.js';
import type { FormParams } from './call-params.js';
import type {
  AnsweredBy,
  CallInfo,
  DialRequest,
  DialResult,
  Dialer,
  EndCallMode,
  FinalCallStatus,
  MessageRequest,
  MessageResult,
} from './dialer.js';

/** What `getCall` reports for every dry-run call. */
export interface DryRunOutcome {
  status: FinalCallStatus;
  answeredBy?: AnsweredBy;
  durationSec?: number;
}

export interface DryRunDialerOptions {
  /** Receives each printed line (no trailing newline). */
  write: (line: string) => void;
  /** Default: a completed call answered by a person, 42 s long. */
  outcome?: DryRunOutcome;
  /** Shown in the printed paths; default a placeholder SID. */
  accountSid?: string;
}

const DEFAULT_OUTCOME: DryRunOutcome = Object.freeze({ status: 'completed', answeredBy: 'human', durationSec: 42 });
const PLACEHOLDER_ACCOUNT_SID = 'ACdryrun00000000000000000000000000';
const SID_DIGITS = 26;

/** Masks every phone number in `text` except its last two digits (`+*********67`). */
export function maskPhoneNumbers(text: string): string {
  return text.replace(/\+(\d{3,15})(?!\d)/g, (_match, digits: string) => `+${'*'.repeat(digits.length - 2)}${digits.slice(-2)}`);
}

/** The dry-run `Dialer` (see the header comment). */
export class DryRunDialer implements Dialer {
  readonly #write: (line: string) => void;
  readonly #outcome: DryRunOutcome;
  readonly #accountSid: string;
  readonly #calls = new Set<string>();
  #sequence = 0;

  constructor(options: DryRunDialerOptions) {
    if (typeof options.write !== 'function') throw new HandoffError('CONFIG', 'dry-run dialer needs a write function');
    this.#write = options.write;
    this.#outcome = { ...(options.outcome ?? DEFAULT_OUTCOME) };
    this.#accountSid = options.accountSid ?? PLACEHOLDER_ACCOUNT_SID;
  }

  async dial(req: DialRequest): Promise<DialResult> {
    const form = toTwilioForm(callCreateOptions(req));
    const sid = this.#nextSid('CA');
    this.#print('POST', TWILIO_PATHS.calls(this.#accountSid), req.handoffId, form);
    this.#write(`dry-run: → 201 sid=${sid} status=queued`);
    this.#calls.add(sid);
    return { sid, status: 'queued' };
  }

  async sendMessage(req: MessageRequest): Promise<MessageResult> {
    const form = toTwilioForm(messageCreateOptions(req));
    const sid = this.#nextSid(req.channel === 'whatsapp' ? 'MM' : 'SM');
    this.#print('POST', TWILIO_PATHS.messages(this.#accountSid), req.handoffId, form);
    this.#write(`dry-run: → 201 sid=${sid}`);
    return { sid };
  }

  async getCall(sid: string): Promise<CallInfo> {
    this.#known(sid);
    this.#print('GET', TWILIO_PATHS.call(this.#accountSid, sid), undefined, []);
    const info: CallInfo = { sid, status: this.#outcome.status };
    if (this.#outcome.answeredBy !== undefined) info.answeredBy = this.#outcome.answeredBy;
    if (this.#outcome.durationSec !== undefined) info.durationSec = this.#outcome.durationSec;
    this.#write(`dry-run: → 200 status=${info.status}${info.answeredBy === undefined ? '' : ` answered_by=${info.answeredBy}`}`);
    return info;
  }

  async endCall(sid: string, mode: EndCallMode): Promise<CallInfo> {
    this.#known(sid);
    const options = callUpdateOptions(mode);
    this.#print('POST', TWILIO_PATHS.call(this.#accountSid, sid), undefined, toTwilioForm(options));
    this.#write(`dry-run: → 200 status=${options.status}`);
    return { sid, status: options.status };
  }

  #known(sid: string): void {
    assertCallSid(sid);
    if (!this.#calls.has(sid)) throw new HandoffError('NOT_FOUND', 'no dry-run call with that SID');
  }

  #nextSid(prefix: string): string {
    this.#sequence += 1;
    return `${prefix}dryrun${String(this.#sequence).padStart(SID_DIGITS, '0')}`;
  }

  #print(method: string, path: string, handoffId: string | undefined, form: FormParams): void {
    this.#write(`dry-run: ${method} ${path}${handoffId === undefined ? '' : ` (handoff ${handoffId})`}`);
    for (const [name, value] of form) {
      // A value with a line break or other control character is printed JSON-quoted, so one
      // field stays one line and the exact text remains recoverable.
      const shown = /[\u0000-\u001F\u007F]/.test(value) ? JSON.stringify(value) : value;
      this.#write(`dry-run:   ${name}=${maskPhoneNumbers(shown)}`);
    }
  }
}
