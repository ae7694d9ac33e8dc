/**
 * Child process that opens the spool at argv[2] as a hub does (exclusive), prints "open", and
 * holds it until killed (exit 34 when the open is refused); on SIGTERM it closes the spool first, as a hub shutting down does.
 */
import { HandoffError } from '../../protocol/index.js';
import { openSpool } from '../../spool/index.js';

const root = process.argv[2];
if (!root) throw new Error('usage: spool-owner.ts SPOOL_DIR');
const spool = await openSpool({ root, exclusive: true }).catch((err: unknown) => {
  // Refused (another owner is alive): exits with the code's exit status, as the CLI would.
  process.exit(err instanceof HandoffError ? err.exitCode : 1);
});
process.stdout.write('open\n');
const keepAlive = setInterval(() => undefined, 60_000);
process.once('SIGTERM', () => {
  clearInterval(keepAlive);
  void spool.close();
});
