/**
 * ISO 8601 timestamps as the protocol uses them. The reference writes `datetime.isoformat()` with
 * `+00:00`, others write a trailing `Z`; both are accepted. A timestamp without a zone is refused:
 * the reference cannot compare it with an aware one, and guessing a zone could move a deadline.
 */
const ISO_RE =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(Z|z|[+-]\d{2}(?::?\d{2})?)$/;

/** Milliseconds since the epoch for an ISO 8601 timestamp with a zone, or undefined if invalid. */
export function parseIsoTime(text: string): number | undefined {
  const m = ISO_RE.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s = '0', frac = '0', zone = 'Z'] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  // Year 0 does not exist for Python's datetime (MINYEAR is 1).
  if (year < 1 || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return undefined;
  // setUTCFullYear, not Date.UTC: Date.UTC reads the years 0–99 as 1900–1999.
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  if (date.getUTCDate() !== day) return undefined; // e.g. 31 April rolled over into May
  date.setUTCHours(hour, minute, second, 0);
  const local = date.getTime() + Number(`0.${frac}`) * 1000;
  let offsetMin = 0;
  if (zone !== 'Z' && zone !== 'z') {
    const sign = zone[0] === '-' ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const oh = Number(digits.slice(0, 2));
    const om = Number(digits.slice(2) || '0');
    if (oh > 23 || om > 59) return undefined;
    offsetMin = sign * (oh * 60 + om);
  }
  return local - offsetMin * 60_000;
}

/** An ISO 8601 UTC timestamp with a trailing `Z` and whole seconds, as our initiator writes them. */
export function isoSeconds(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

/** An ISO 8601 UTC timestamp with milliseconds, for relay facts and logs. */
export function isoMillis(ms: number): string {
  return new Date(ms).toISOString();
}
