import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { PolicyEngine, toStartFields } from '../policy/index.js';
import type { Decision } from '../policy/index.js';
import { HandoffError } from '../protocol/errors.js';
import { REPO_ROOT, runCli } from './helpers/cli.js';
import {
  MIN_PRECISION,
  MIN_RECALL,
  STRICT_TYPES,
  evaluate,
  loadFixtures,
  thresholdFailures,
} from './helpers/policy-eval.js';
import { tmpDir } from './helpers/tmp.js';


type Json = Record<string, unknown>;

function loadExample(name: string): Json {
  return JSON.parse(readFileSync(path.join(REPO_ROOT, 'examples', 'policies', `${name}.json`), 'utf8')) as Json;
}

/** A small policy: bob, alice, gordon and a human desk, with the given rules. */
function policy(rules: Json[], extra: Json = {}): Json {
  return {
    version: 1,
    agent: 'bob',
    agents: { bob: {}, alice: { aliases: ['ally'] }, gordon: {} },
    human: { target: 'desk' },
    rules,
    ...extra,
  };
}

const user = (text: string) => ({ role: 'user', text });
const assistant = (text: string) => ({ role: 'assistant', text });

function decide(rules: Json[], turns: unknown[], signals: Json = {}, extra: Json = {}): Decision {
  return new PolicyEngine(policy(rules, extra)).decide(turns, signals);
}

function assertCode(fn: () => unknown, code: string, pattern?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof HandoffError, `expected a HandoffError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (pattern !== undefined) assert.match(err.message, pattern);
    return true;
  });
}

const EXPLICIT = { id: 'asks', type: 'explicit_request', priority: 90 };

describe('policy schema', () => {
  test('both example policies validate', () => {
    assert.equal(new PolicyEngine(loadExample('personal')).policy.rules.length, 8);
    assert.equal(new PolicyEngine(loadExample('dental')).policy.human.target, 'frontdesk');
  });

  test('an unknown rule type → CONFIG naming the known types', () => {
    assertCode(() => new PolicyEngine(policy([{ id: 'x', type: 'vibes', priority: 1 }])), 'CONFIG', /explicit_request/);
  });

  test('two rules with one priority → CONFIG naming both', () => {
    const rules = [EXPLICIT, { id: 'upset', type: 'negative_sentiment', priority: 90, threshold: -0.5 }];
    assertCode(() => new PolicyEngine(policy(rules)), 'CONFIG', /'upset' and rule 'asks' share priority 90/);
  });

  test('a floor priority equal to another rule priority → CONFIG', () => {
    const rules = [EXPLICIT, { id: 'unsure', type: 'low_confidence', priority: 50, threshold: 0.7, floor: 0.4, floor_priority: 90 }];
    assertCode(() => new PolicyEngine(policy(rules)), 'CONFIG', /share priority 90/);
  });

  test('a handoff action without target → CONFIG at the rule path', () => {
    const rules = [{ id: 'upset', type: 'negative_sentiment', priority: 1, threshold: -0.5, action: 'handoff' }];
    assertCode(() => new PolicyEngine(policy(rules)), 'CONFIG', /rules\[0\]\.target: a handoff action needs a target/);
  });

  test('a target that is not a listed agent → CONFIG', () => {
    const rules = [{ id: 'own', type: 'capability', priority: 1, routes: [{ target: 'zed', topics: [{ name: 'finance' }] }] }];
    assertCode(() => new PolicyEngine(policy(rules)), 'CONFIG', /'zed' is not listed in agents/);
  });

  test('a floor at or above the threshold → CONFIG', () => {
    const rules = [{ id: 'unsure', type: 'low_confidence', priority: 1, threshold: 0.5, floor: 0.6 }];
    assertCode(() => new PolicyEngine(policy(rules)), 'CONFIG', /floor must be below threshold/);
  });

  test('a topic with no terms and no built-in pack → CONFIG listing the packs', () => {
    const rules = [{ id: 'reg', type: 'regulated_topic', priority: 1, topics: [{ name: 'astrology' }] }];
    assertCode(() => new PolicyEngine(policy(rules)), 'CONFIG', /'astrology' has no terms and no built-in pack \(built-in: .*legal/);
  });

  test('a misspelt key → CONFIG instead of being ignored', () => {
    assertCode(() => new PolicyEngine(policy([{ ...EXPLICIT, windw: 2 }])), 'CONFIG', /windw/);
  });

  test('a transcript turn with an unknown role → SCHEMA', () => {
    assertCode(() => new PolicyEngine(policy([EXPLICIT])).decide([{ role: 'robot', text: 'hi' }]), 'SCHEMA', /transcript: \[0\]\.role/);
  });

  test('a confidence signal above 1 or an unknown signal → SCHEMA', () => {
    const engine = new PolicyEngine(policy([EXPLICIT]));
    assertCode(() => engine.decide([user('hi')], { confidence: 1.5 }), 'SCHEMA', /signals: confidence/);
    assertCode(() => engine.decide([user('hi')], { confidance: 0.5 }), 'SCHEMA', /confidance/);
  });

  test('no current agent in the policy or the signals → SCHEMA', () => {
    const engine = new PolicyEngine(policy([EXPLICIT], { agent: undefined }));
    assertCode(() => engine.decide([user('hi')]), 'SCHEMA', /current_agent is required/);
    assert.equal(engine.decide([user('hi')], { current_agent: 'alice' }).action, 'stay');
  });
});

describe('explicit_request', () => {
  test('"can I talk to alice" → handoff to alice with the words as evidence', () => {
    const d = decide([EXPLICIT], [user('Hi there. Can I talk to Alice about the offsite?')]);
    assert.equal(d.action, 'handoff');
    assert.equal(d.target, 'alice');
    assert.equal(d.reason_code, 'explicit_request_agent');
    const evidence = d.matched[0]?.evidence[0];
    assert.equal(evidence?.kind, 'text');
    assert.match(evidence?.kind === 'text' ? evidence.words : '', /talk to Alice/);
  });

  test('an alias names its agent: "put me through to Ally" → alice', () => {
    assert.equal(decide([EXPLICIT], [user('Put me through to Ally please')]).target, 'alice');
  });

  test('"I want a human" → escalate_human to the policy human target', () => {
    const d = decide([EXPLICIT], [user('I want a human.')]);
    assert.deepEqual([d.action, d.target, d.reason_code], ['escalate_human', 'desk', 'explicit_request_human']);
  });

  test('"I don\'t need a human" and "no need to transfer me to anyone" are not requests', () => {
    assert.equal(decide([EXPLICIT], [user("I don't need a human, thanks.")]).action, 'stay');
    assert.equal(decide([EXPLICIT], [user('No need to transfer me to anyone.')]).action, 'stay');
  });

  test('"why can\'t I talk to a person" and "isn\'t there a person" are requests', () => {
    assert.equal(decide([EXPLICIT], [user("Why can't I talk to a person?")]).action, 'escalate_human');
    assert.equal(decide([EXPLICIT], [user("Isn't there a person I can speak to?")]).action, 'escalate_human');
  });

  test('quoted words are not the caller\'s request', () => {
    assert.equal(decide([EXPLICIT], [user('My son always says "let me talk to a human" to the TV.')]).action, 'stay');
    assert.equal(decide([EXPLICIT], [user("The sign said 'ask for a manager', weird.")]).action, 'stay');
  });

  test('a hypothetical is not a request: "if I need a human later"', () => {
    assert.equal(decide([EXPLICIT], [user('If I need a human later, how do I reach one?')]).action, 'stay');
  });

  test('a later "never mind" takes the request back, a later request wins', () => {
    assert.equal(decide([EXPLICIT], [user('Can I talk to Alice?'), assistant('Sure.'), user('Actually, never mind.')]).action, 'stay');
    assert.equal(decide([EXPLICIT], [user('Can I talk to Alice? No wait, get me Gordon.')]).target, 'gordon');
  });

  test('"yes please" after an offer accepts it; "no thanks" declines it', () => {
    const offer = assistant('Would you like me to transfer you to Gordon?');
    assert.equal(decide([EXPLICIT], [offer, user('Yes please.')]).target, 'gordon');
    assert.equal(decide([EXPLICIT], [offer, user('No thanks, you can do it.')]).action, 'stay');
  });

  test('asking for the agent already talking is no handoff', () => {
    assert.equal(decide([EXPLICIT], [user('Can I talk to Bob?')]).action, 'stay');
  });

  test('mentions and possessives are not requests', () => {
    assert.equal(decide([EXPLICIT], [user("Gordon's spreadsheet is broken.")]).action, 'stay');
    assert.equal(decide([EXPLICIT], [user('Alice told me you could help.')]).action, 'stay');
    assert.equal(decide([EXPLICIT], [user('Let me talk to my manager first.')]).action, 'stay');
  });

  test('humans: false ignores requests for a person but keeps agent requests', () => {
    const rule = { ...EXPLICIT, humans: false };
    assert.equal(decide([rule], [user('I want a human.')]).action, 'stay');
    assert.equal(decide([rule], [user('Let me speak to Gordon.')]).target, 'gordon');
  });

  test('human_terms adds the words a practice uses for its staff', () => {
    const rule = { ...EXPLICIT, human_terms: ['dentist'] };
    assert.equal(decide([rule], [user('I would like to speak with the dentist.')]).action, 'escalate_human');
    assert.equal(decide([rule], [user('I need a dentist appointment.')]).action, 'stay');
  });
});

describe('low_confidence', () => {
  const rule = { id: 'unsure', type: 'low_confidence', priority: 50, threshold: 0.7, floor: 0.4, floor_priority: 95, action: 'handoff', target: 'alice' };

  test('below the threshold → the rule action, with the signal as evidence', () => {
    const d = decide([rule], [user('the thing')], { confidence: 0.6 });
    assert.deepEqual([d.action, d.target, d.reason_code], ['handoff', 'alice', 'low_confidence']);
    assert.deepEqual(d.matched[0]?.evidence, [{ kind: 'signal', signal: 'confidence', value: 0.6, threshold: 0.7 }]);
  });

  test('below the floor → escalate_human at the floor priority', () => {
    const d = decide([rule], [user('the thing')], { confidence: 0.3 });
    assert.deepEqual([d.action, d.target, d.reason_code], ['escalate_human', 'desk', 'confidence_floor']);
    assert.equal(d.matched[0]?.rule_priority, 95);
  });

  test('at the threshold, or without the signal, nothing matches', () => {
    assert.equal(decide([rule], [user('x')], { confidence: 0.7 }).matched.length, 0);
    assert.equal(decide([rule], [user('x')]).matched.length, 0);
  });

  test('a handoff to the agent already talking does not match', () => {
    assert.equal(decide([rule], [user('x')], { confidence: 0.6, current_agent: 'alice' }).matched.length, 0);
  });
});

describe('negative_sentiment', () => {
  const rule = { id: 'upset', type: 'negative_sentiment', priority: 50, threshold: -0.6 };

  test('at or below the threshold → escalate_human', () => {
    assert.equal(decide([rule], [user('ugh')], { sentiment: -0.6 }).action, 'escalate_human');
    assert.equal(decide([rule], [user('ugh')], { sentiment: -0.9 }).reason_code, 'negative_sentiment');
  });

  test('above the threshold → stay', () => {
    assert.equal(decide([rule], [user('ugh')], { sentiment: -0.5 }).action, 'stay');
  });
});

describe('conversation_loop', () => {
  const rule = { id: 'loop', type: 'conversation_loop', priority: 50 };

  test('three "I didn\'t understand" turns running → escalate_human', () => {
    const turns = [
      assistant("Sorry, I didn't catch that."), user('the standup'),
      assistant("Sorry, I didn't understand. Could you repeat that?"), user('THE STANDUP'),
      assistant("I'm sorry, I'm not sure what you mean."),
    ];
    const d = decide([rule], turns);
    assert.deepEqual([d.action, d.reason_code], ['escalate_human', 'conversation_loop']);
    assert.equal(d.matched[0]?.evidence.length, 3);
  });

  test('two failures and "you\'re not listening" count as three', () => {
    const turns = [assistant('Could you say that again?'), user('Tomorrow.'), assistant("Sorry, I didn't get that."), user("You're not listening.")];
    assert.equal(decide([rule], turns).action, 'escalate_human');
  });

  test('one failure followed by progress is not a loop', () => {
    const turns = [assistant("Sorry, I didn't catch that."), user('The staging server.'), assistant('Staging is up.'), user('Thanks.')];
    assert.equal(decide([rule], turns).action, 'stay');
  });

  test('the same prompt three times, even behind an apology, is a loop', () => {
    const turns = [
      assistant('Which day would suit you best?'), user('the 14th'),
      assistant('Sorry. Which day would suit you best?'), user('THE FOURTEENTH'),
      assistant('Which day would suit you best?'),
    ];
    assert.equal(decide([rule], turns).action, 'escalate_human');
  });
});

describe('regulated_topic', () => {
  const rule = { id: 'reg', type: 'regulated_topic', priority: 100, topics: [{ name: 'financial_dispute' }, { name: 'legal' }, { name: 'data_privacy' }] };

  test('a disputed charge → escalate_human with the topic in the reason code', () => {
    const d = decide([rule], [user('There are two payments on my card I never made.')]);
    assert.deepEqual([d.action, d.target, d.reason_code], ['escalate_human', 'desk', 'regulated_financial_dispute']);
  });

  test('legal and privacy matters have their own reason codes', () => {
    assert.equal(decide([rule], [user('My lawyer will be in touch.')]).reason_code, 'regulated_legal');
    assert.equal(decide([rule], [user('Please delete all the data you hold about me.')]).reason_code, 'regulated_data_privacy');
  });

  test('negated, quoted or resolved mentions do not count', () => {
    assert.equal(decide([rule], [user("I'm not disputing the bill, I just want to pay it.")]).action, 'stay');
    assert.equal(decide([rule], [user('What does "chargeback" mean?')]).action, 'stay');
    assert.equal(decide([rule], [user('I was charged twice, but they already refunded it.')]).action, 'stay');
  });

  test('near misses: a friend called Sue, a tennis court, deleting a meeting, a refund policy', () => {
    const texts = ['My friend Sue is coming.', 'The tennis court is booked.', 'Delete the meeting with Tom.', 'What is your refund policy?'];
    for (const text of texts) {
      assert.equal(decide([rule], [user(text)]).action, 'stay', text);
    }
  });

  test('a policy can add its own terms to a topic', () => {
    const own = { ...rule, topics: [{ name: 'data_privacy', terms: ['dental records'] }] };
    assert.equal(decide([own], [user('Please send my dental records to my new dentist.')]).action, 'escalate_human');
  });
});

describe('value_threshold', () => {
  const rule = { id: 'big', type: 'value_threshold', priority: 40, min_value: 1000, from_transcript: true, action: 'handoff', target: 'gordon', call_priority: 'high' };

  test('a value signal at the threshold → the rule action and its call priority', () => {
    const d = decide([rule], [user('go ahead')], { value: 1000 });
    assert.deepEqual([d.action, d.target, d.priority], ['handoff', 'gordon', 'high']);
  });

  test('amounts in the caller\'s words count: "$15k", "2,400 euros", "five thousand dollars"', () => {
    for (const text of ['A $15k renovation.', 'It is about 2,400 euros.', 'It runs about five thousand dollars.']) {
      assert.equal(decide([rule], [user(text)]).target, 'gordon', text);
    }
  });

  test('smaller amounts, or text when from_transcript is off, do not count', () => {
    assert.equal(decide([rule], [user('The plumber quoted 300 dollars.')]).action, 'stay');
    assert.equal(decide([{ ...rule, from_transcript: false }], [user('It costs $5,000.')]).action, 'stay');
  });
});

describe('urgency', () => {
  const modifier = { id: 'urgent', type: 'urgency', priority: 50, topics: [{ name: 'emergency' }, { name: 'urgency' }] };
  const escalate = { id: 'pain', type: 'urgency', priority: 100, action: 'escalate_human', topics: [{ name: 'pain' }] };

  test('without an action it raises the priority but never decides', () => {
    const d = decide([modifier], [user("It's urgent, the site is down.")]);
    assert.deepEqual([d.action, d.priority, d.reason_code], ['stay', 'urgent', 'no_rule_matched']);
    assert.equal(d.matched[0]?.action, 'none');
  });

  test('with an action it escalates at urgent priority', () => {
    const d = decide([escalate], [user('I have terrible pain in my molar.')]);
    assert.deepEqual([d.action, d.priority, d.reason_code], ['escalate_human', 'urgent', 'urgent_pain']);
  });

  test('negation, general questions, idioms and resolutions are not urgent', () => {
    const texts = [
      "It doesn't hurt, I just want a cleaning.",
      'Will the filling hurt?',
      'Taxes are such a pain.',
      'I was in pain last week but it is gone now.',
      'The emergency contact on my file is wrong.',
    ];
    for (const text of texts) assert.equal(decide([escalate, { ...modifier, priority: 40 }], [user(text)]).action, 'stay', text);
  });
});

describe('capability', () => {
  const rule = {
    id: 'owns',
    type: 'capability',
    priority: 10,
    routes: [
      { target: 'bob', topics: [{ name: 'engineering' }] },
      { target: 'alice', topics: [{ name: 'scheduling' }] },
      { target: 'gordon', topics: [{ name: 'finance' }] },
    ],
  };

  test('a topic another agent owns → handoff with reason "<topic>_capability"', () => {
    const d = decide([rule], [user('Can you schedule a call with the designer for Tuesday?')]);
    assert.deepEqual([d.action, d.target, d.reason_code], ['handoff', 'alice', 'scheduling_capability']);
  });

  test('a topic the current agent owns → stay, and the match says so', () => {
    const d = decide([rule], [user('The build keeps failing.')]);
    assert.deepEqual([d.action, d.reason_code], ['stay', 'engineering_capability']);
    assert.equal(d.target, undefined);
    assert.equal(d.matched[0]?.target, 'bob');
  });

  test('the latest turn weighs double, so the topic follows the caller', () => {
    const turns = [user('The deploy failed.'), assistant('Looking.'), user('Also, can you move my meeting?')];
    assert.equal(decide([rule], turns).target, 'alice');
  });

  test('on a tie the current agent keeps the caller', () => {
    assert.equal(decide([rule], [user('The deploy of the budget app.')]).action, 'stay');
  });

  test('a custom topic with its own terms routes too', () => {
    const custom = { ...rule, routes: [{ target: 'gordon', topics: [{ name: 'crypto', builtin: false, terms: ['bitcoin*'] }] }] };
    assert.equal(decide([custom], [user('How are my bitcoins doing?')]).reason_code, 'crypto_capability');
  });
});

describe('combination order', () => {
  const regulated = { id: 'reg', type: 'regulated_topic', priority: 100, topics: [{ name: 'financial_dispute' }] };
  const capability = { id: 'owns', type: 'capability', priority: 10, routes: [{ target: 'gordon', topics: [{ name: 'finance' }] }] };
  const conversation = [user('Can Gordon help? I was charged twice for the hotel.')];

  test('the highest priority decides, and every match is listed highest first', () => {
    const d = decide([capability, EXPLICIT, regulated], conversation);
    assert.equal(d.reason_code, 'regulated_financial_dispute');
    assert.deepEqual(d.matched.map((m) => m.rule), ['reg', 'asks', 'owns']);
  });

  test('raising a rule above the others changes the decision, not the file order', () => {
    const d = decide([capability, { ...EXPLICIT, priority: 200 }, regulated], conversation);
    assert.deepEqual([d.action, d.target, d.reason_code], ['handoff', 'gordon', 'explicit_request_agent']);
  });

  test('the priority is the highest any match asks for, even from a rule that does not decide', () => {
    const urgent = { id: 'urgent', type: 'urgency', priority: 5, topics: [{ name: 'urgency' }] };
    const d = decide([EXPLICIT, urgent], [user('Urgent: let me speak to Gordon.')]);
    assert.deepEqual([d.target, d.priority, d.reason_code], ['gordon', 'urgent', 'explicit_request_agent']);
  });

  test('no match → stay with reason no_rule_matched and the policy default priority', () => {
    const d = decide([EXPLICIT], [user('What time is it?')], {}, { default_priority: 'low' });
    assert.deepEqual(d, { action: 'stay', reason_code: 'no_rule_matched', priority: 'low', confidence: 1, matched: [] });
  });
});

describe('ping-pong guard', () => {
  const back = [user('Can you send me back to Bob?')];

  test('a handoff back to the agent that just handed over → stay with reason ping_pong', () => {
    const d = decide([EXPLICIT], back, { current_agent: 'alice', from_agent: 'bob', hop: 1 });
    assert.deepEqual([d.action, d.target, d.reason_code], ['stay', undefined, 'ping_pong']);
    assert.equal(d.matched[0]?.type, 'ping_pong_guard');
    assert.equal(d.matched[1]?.target, 'bob');
  });

  test('on_bounce escalate_human sends the caller to the human target instead', () => {
    const d = decide([EXPLICIT], back, { current_agent: 'alice', from_agent: 'bob' }, { ping_pong: { on_bounce: 'escalate_human' } });
    assert.deepEqual([d.action, d.target, d.reason_code], ['escalate_human', 'desk', 'ping_pong']);
  });

  test('a handoff to a third agent is no bounce', () => {
    const d = decide([EXPLICIT], [user('Can I talk to Gordon?')], { current_agent: 'alice', from_agent: 'bob', hop: 1 });
    assert.deepEqual([d.action, d.target], ['handoff', 'gordon']);
  });

  test('at the hop limit a handoff → on_hop_limit with reason hop_limit', () => {
    const d = decide([EXPLICIT], [user('Can I talk to Gordon?')], { hop: 3 }, { ping_pong: { max_hops: 3 } });
    assert.deepEqual([d.action, d.target, d.reason_code], ['escalate_human', 'desk', 'hop_limit']);
    assert.deepEqual(d.matched[0]?.evidence, [{ kind: 'signal', signal: 'hop', value: 3, threshold: 3 }]);
    assert.equal(decide([EXPLICIT], [user('Can I talk to Gordon?')], { hop: 2 }, { ping_pong: { max_hops: 3 } }).action, 'handoff');
  });

  test('escalating to a person is never blocked by the hop limit', () => {
    const d = decide([EXPLICIT], [user('I want a human.')], { hop: 9 });
    assert.deepEqual([d.action, d.reason_code], ['escalate_human', 'explicit_request_human']);
  });

  test('allow_explicit_return lets the caller go back on request, but not a capability route', () => {
    const extra = { ping_pong: { allow_explicit_return: true } };
    const signals = { current_agent: 'alice', from_agent: 'bob', hop: 1 };
    assert.equal(decide([EXPLICIT], back, signals, extra).target, 'bob');
    const capability = { id: 'owns', type: 'capability', priority: 10, routes: [{ target: 'bob', topics: [{ name: 'engineering' }] }] };
    assert.equal(decide([capability], [user('The build is broken.')], signals, extra).reason_code, 'ping_pong');
  });
});

describe('determinism', () => {
  test('the same input gives the same decision, and rule file order does not matter', () => {
    const example = loadExample('personal');
    const turns = [user('Can Alice set up a standup? It is urgent, and I was charged twice for the room.')];
    const first = new PolicyEngine(example).decide(turns, { confidence: 0.65 });
    assert.deepEqual(new PolicyEngine(example).decide(turns, { confidence: 0.65 }), first);
    const reversed = { ...example, rules: [...(example['rules'] as unknown[])].reverse() };
    assert.deepEqual(new PolicyEngine(reversed).decide(turns, { confidence: 0.65 }), first);
    assert.equal(first.reason_code, 'regulated_financial_dispute');
  });
});

describe('handoff start fields', () => {
  test('a handoff gives to_agent, reason, priority, the next hop and a hint with the evidence', () => {
    const d = decide([EXPLICIT], [user('Can I talk to Alice about the standup?')]);
    const fields = toStartFields(d, { fromAgent: 'bob', hop: 1 });
    assert.equal(fields.to_agent, 'alice');
    assert.equal(fields.reason, 'explicit_request_agent');
    assert.equal(fields.priority, 'normal');
    assert.equal(fields.hop, 2);
    assert.match(fields.resume_hint, /^bob handed this caller to you: the caller asked for you \("Can I talk to Alice about the standup"\)/);
  });

  test('stay → USAGE; escalate_human without human.target → CONFIG', () => {
    assertCode(() => toStartFields(decide([EXPLICIT], [user('hello')]), { fromAgent: 'bob' }), 'USAGE');
    const noDesk = new PolicyEngine(policy([EXPLICIT], { human: {} })).decide([user('I want a human')]);
    assert.equal(noDesk.target, undefined);
    assertCode(() => toStartFields(noDesk, { fromAgent: 'bob' }), 'CONFIG', /human\.target/);
  });
});

describe('handoff decide (child process)', () => {
  const personal = path.join(REPO_ROOT, 'examples', 'policies', 'personal.json');

  async function decideCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const r = await runCli(['decide', ...args]);
    return { code: r.code ?? -1, stdout: r.stdout, stderr: r.stderr };
  }

  test('--json prints the decision as one JSON document; human output shows the start fields', async (t) => {
    const dir = await tmpDir(t, 'policy-cli-');
    const transcript = path.join(dir, 'transcript.json');
    const signals = path.join(dir, 'signals.json');
    await writeFile(transcript, JSON.stringify({ transcript: [user('Can Alice set up a standup with Patrik?')] }));
    await writeFile(signals, JSON.stringify({ hop: 0 }));
    const json = await decideCli(['--policy', personal, '--transcript', transcript, '--signals', signals, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const decision = JSON.parse(json.stdout) as Decision;
    assert.deepEqual([decision.action, decision.target, decision.reason_code], ['handoff', 'alice', 'explicit_request_agent']);
    const human = await decideCli(['--policy', personal, '--transcript', transcript]);
    assert.match(human.stdout, /^handoff → alice/);
    assert.match(human.stdout, /to_agent +alice/);
    assert.match(human.stdout, /resume_hint +bob handed this caller to you/);
  });

  test('a missing policy file → CONFIG (exit 3); a broken transcript → SCHEMA (exit 11); no --policy → USAGE (exit 2)', async (t) => {
    const dir = await tmpDir(t, 'policy-cli-');
    const broken = path.join(dir, 'broken.json');
    await writeFile(broken, '[{"role": "user", "text": ');
    const missing = await decideCli(['--policy', path.join(dir, 'nope.json'), '--transcript', broken]);
    assert.deepEqual([missing.code, /error \[CONFIG\]/.test(missing.stderr)], [3, true]);
    const bad = await decideCli(['--policy', personal, '--transcript', broken, '--json']);
    assert.equal(bad.code, 11);
    assert.equal((JSON.parse(bad.stderr) as { error: { code: string } }).error.code, 'SCHEMA');
    const usage = await decideCli(['--transcript', broken]);
    assert.deepEqual([usage.code, /error \[USAGE\]/.test(usage.stderr)], [2, true]);
  });
});

describe('evaluation on the labelled conversations', () => {
  test(`explicit requests and regulated topics reach recall ${MIN_RECALL} and precision ≥ ${MIN_PRECISION}`, () => {
    const fixtures = loadFixtures();
    assert.ok(fixtures.conversations.length >= 150, 'at least 150 labelled conversations');
    assert.deepEqual(new Set(fixtures.conversations.map((c) => c.policy)), new Set(['personal', 'dental']));
    const report = evaluate(fixtures);
    for (const type of STRICT_TYPES) assert.ok(report.perType[type].tp > 0, `${type} has positives`);
    assert.deepEqual(thresholdFailures(report), []);
  });
});
