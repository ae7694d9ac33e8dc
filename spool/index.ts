/**
 * spool/: the crash-safe durable store of handoffs (DESIGN.md §4). The on-disk format and the
 * state machine are specified in the header comment of `spool.ts`.
 */
export {
  bucketOf,
  DEFAULT_FOREIGN_GRACE_MS,
  DEFAULT_LEASE_MS,
  DEFAULT_RECOVERY_GRACE_MS,
  MAX_SPOOL_FILE_BYTES,
  MAX_SPOOL_PAYLOAD_BYTES,
  openSpool,
  Spool,
} from './spool.js';
export type { SpoolOptions } from './spool.js';
export { HANDOFF_STATES, REASON_CODE_RE, TERMINAL_STATES } from './types.js';
export type {
  Claim,
  CompleteInput,
  HandoffRecord,
  HandoffState,
  PendingEntry,
  PurgeOptions,
  PurgeResult,
  PutResult,
  RecoveryReport,
  RejectInput,
  RelayFacts,
  SpoolApi,
  SweepResult,
  TransitionEvent,
} from './types.js';
export { AUDIT_EVENTS, GENESIS_HASH, verifyAudit } from './audit.js';
export type { AuditEvent, AuditEventName, AuditProblem, AuditVerifyResult } from './audit.js';
export { createRealFsOps, MUTATING_FS_CALLS } from './fs-ops.js';
export type { FsFd, FsOps, FsStat } from './fs-ops.js';
export { decodeStoredFile, encodeEnvelope } from './envelope.js';
export type { StoredFile } from './envelope.js';
