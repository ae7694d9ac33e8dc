/**
 * A local-mode claimer in its own process, for the claim races: opens the spool at argv[2] as agent
 * argv[3], prints "ready", then for every line of stdin (a JSON list of ids) claims them all at once,
 * each with a fresh proposed token, and prints one JSON line `{"won":{id:token},"lost":{id:code}}`.
 */
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { openSpool } from '../../spool/index.js';

const [root, agent] = process.argv.slice(2);
if (!root || !agent) throw new Error('usage: claim-child.ts ROOT AGENT');
const spool = await openSpool({ root });
process.stdout.write('ready\n');
for await (const line of createInterface({ input: process.stdin })) {
  const ids = JSON.parse(line) as string[];
  const won: Record<string, string> = {};
  const lost: Record<string, string> = {};
  await Promise.all(
    ids.map(async (id) => {
      const token = randomBytes(32).toString('base64url');
      try {
        await spool.claim(id, agent, { token });
        won[id] = token;
      } catch (err) {
        lost[id] = (err as { code?: string }).code ?? 'UNKNOWN';
      }
    }),
  );
  process.stdout.write(`${JSON.stringify({ won, lost })}\n`);
}
await spool.close();
