/**
 * The list of commands. Each module registers its options cheaply and loads heavy code inside its
 * action, so `handoff --help` never loads hono, twilio or chokidar.
 */
import type { Command } from 'commander';
import { register as decide } from './decide.js';
import { register as demo } from './demo.js';
import { register as doctor } from './doctor.js';
import { register as hub } from './hub.js';
import { register as keys } from './keys.js';
import { register as lifecycle } from './lifecycle.js';
import { register as listen } from './listen.js';
import { register as spool } from './spool.js';
import { register as verify } from './verify.js';

export function registerCommands(program: Command): void {
  lifecycle(program);
  verify(program);
  keys(program);
  hub(program);
  listen(program);
  demo(program);
  spool(program);
  decide(program);
  doctor(program);
}
