/**
 * Child process that takes the spool lock at argv[2] (as an audit append or a sweep does), prints
 * "locked" and holds it until it is killed.
 */
import { acquireLock } from '../../spool/lock.js';

const lockPath = process.argv[2];
if (!lockPath) throw new Error('usage: lock-holder.ts LOCK_PATH');
await acquireLock(lockPath);
process.stdout.write('locked\n');
setInterval(() => undefined, 60_000);
