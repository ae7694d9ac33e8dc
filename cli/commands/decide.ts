import type { Command } from 'commander';
import { emit } from '../output.js';

interface DecideFlags {
  policy: string;
  transcript: string;
  signals?: string;
  json?: boolean;
}

/** `handoff decide`: evaluates the decision policy on the conversation so far. */
export function register(program: Command): void {
  program
    .command('decide')
    .description('decide from the conversation so far whether to stay, hand off, or escalate to a person')
    .requiredOption('--policy <file>', 'policy file (JSON), e.g. examples/policies/personal.json')
    .requiredOption('--transcript <file>', 'transcript: a JSON list of {role, text, ts?} or a payload with "transcript"; - reads stdin')
    .option('--signals <file>', 'JSON {confidence?, sentiment?, value?, from_agent?, hop?, current_agent?}; - reads stdin')
    .option('--json', 'print the decision as one JSON document')
    .addHelpText(
      'after',
      '\nExample:\n  echo \'[{"role":"user","text":"Can I talk to Alice?"}]\' | handoff decide --policy examples/policies/personal.json --transcript -',
    )
    .action(async (flags: DecideFlags) => {
      const { decideFromFiles, renderDecision } = await import('./decide-impl.js');
      const result = await decideFromFiles(flags);
      emit(flags, result.decision, () => renderDecision(result));
    });
}
