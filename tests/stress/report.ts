/**
 * What every stress suite returns: counts for the summary table, and the invariant violations it
 * found (each with a kind, so that a negative control can check that the suite saw its bug).
 */

export interface Violation {
  /** A stable name of the broken promise, e.g. `lost-ack`, `two-winners`, `server-error`. */
  kind: string;
  detail: string;
}

export interface SuiteCounts {
  /** Spool or HTTP operations issued. */
  operations: number;
  /** Crash points injected (fault-injection cuts, power cuts, kill -9). */
  crashes: number;
  /** Real `kill -9` of a process. */
  kills: number;
  /** Contended rounds (one handoff raced by several parties, one boundary instant). */
  races: number;
  /** Generated hostile inputs. */
  fuzzCases: number;
  /** Tampered copies of the audit log checked. */
  tampered: number;
}

export interface SuiteResult extends SuiteCounts {
  name: string;
  violations: Violation[];
  /** Measurements worth reporting that are not counts (e.g. the slowest restart). */
  notes?: string[];
}

/** An empty result to add counts to. */
export function newResult(name: string): SuiteResult {
  return { name, operations: 0, crashes: 0, kills: 0, races: 0, fuzzCases: 0, tampered: 0, violations: [] };
}

/** Collects violations; keeps the first few details of each kind so a report stays readable. */
export function violate(result: SuiteResult, kind: string, detail: string): void {
  result.violations.push({ kind, detail });
}

/** One line per violation kind with its count and first detail (for assertion messages). */
export function describeViolations(violations: readonly Violation[]): string {
  const byKind = new Map<string, Violation[]>();
  for (const v of violations) byKind.set(v.kind, [...(byKind.get(v.kind) ?? []), v]);
  return [...byKind].map(([kind, list]) => `${kind} ×${list.length}: ${list[0]?.detail ?? ''}`).join('\n');
}
