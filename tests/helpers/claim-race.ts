/**
 * Child process for the two-process claim race: opens the spool at argv[2], prints "ready",
 * waits for a line on stdin, then claims every id in argv[4..] as agent argv[3] at once and prints
 * one JSON line: {"won": [...ids], "lost": {"id": "CODE"}}.
 */
import { once } from 'node:events';
import { openSpool } from '../../spool/index.js';

const [root, agent, ...ids] = process.argv.slice(2);
if (!root || !agent) throw new Error('usage: claim-race.ts ROOT AGENT ID...');
const spool = await openSpool({ root });
process.stdout.write('ready\n');
await once(process.stdin, 'data');
const won: string[] = [];
const lost: Record<string, string> = {};
await Promise.all(
  ids.map(async (id) => {
    try {
      await spool.claim(id, agent);
      won.push(id);
    } catch (err) {
      lost[id] = (err as { code?: string }).code ?? 'UNKNOWN';
    }
  }),
);
await spool.close();
process.stdout.write(`${JSON.stringify({ won, lost })}\n`);
process.stdin.destroy();
