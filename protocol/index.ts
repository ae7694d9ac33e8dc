/**
 * protocol/: the wire contract of handoff protocol v1 (gptme-voice compatible). Pure: no network,
 * no spool.
 */
export { ERROR_CODES, HandoffError, isErrorCode, toHandoffError, VERIFY_CODES } from './errors.js';
export type { ErrorCode, VerifyCode } from './errors.js';
export {
  canonicalJson,
  compareCodePoints,
  decodeText,
  fromJs,
  isJsonObject,
  JsonNumber,
  MAX_DEPTH,
  parseJson,
  parseJsonDocument,
  pythonFloatRepr,
  pythonNumber,
  pythonString,
  toJs,
} from './json.js';
export type { JsonDocument, JsonObject, JsonValue, Span } from './json.js';
export {
  AGENT_NAME_RE,
  assertSafeId,
  CALLER_HASH_RE,
  CHANNELS,
  checkPayloadTree,
  E164_RE,
  expiresAtMs,
  HANDOFF_ID_RE,
  isExpired,
  isSafeId,
  MAX_HOP,
  parsePayload,
  PayloadSchema,
  PRIORITIES,
  PROTOCOL_VERSION,
  sanitizeId,
  TranscriptEntrySchema,
} from './payload.js';
export type { Consent, ParsedPayload, PayloadDocument, TranscriptEntry } from './payload.js';
export {
  buildPayload,
  callerHash,
  computeHmac,
  DEFAULT_TTL_SEC,
  signPayload,
  verifyPayload,
} from './sign.js';
export type { BuildInput, SignedPayload, VerifyOptions, VerifyResult } from './sign.js';
export {
  decodeKeyBytes,
  generateSecret,
  keyFilePath,
  keyRingFromSecrets,
  loadKeyRing,
  MAX_KEY_FILE_BYTES,
  MIN_SECRET_BYTES,
  parseKeyText,
  readKeyFile,
  readSmallFile,
  readSmallFileSync,
  RECOMMENDED_SECRET_BYTES,
  writeKeyFile,
} from './keys.js';
export type { KeyRing, SmallFile, SmallFileRules } from './keys.js';
export { isoMillis, isoSeconds, parseIsoTime } from './time.js';
