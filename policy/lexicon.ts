/**
 * Built-in word lists. A policy names a topic ("financial_dispute", "scheduling", …); when a
 * built-in pack of that name exists, its patterns are used together with the policy's own terms.
 *
 * The packs are regular-expression sources over normalised text (lower case, hyphens as spaces,
 * see text.ts); a policy's own terms use the simpler phrase syntax of `termSource`. A pack is
 * `terms` (any one of them is enough) plus `combos` (a word of `any` and a word of `with` in the
 * same sentence, e.g. a charge and something wrong with it), minus `exclude` (phrases in which a
 * term means something else: "emergency contact", "a pain in the neck").
 */

export interface BuiltinPack {
  readonly description: string;
  readonly terms: readonly string[];
  readonly combos?: readonly { readonly any: readonly string[]; readonly with: readonly string[] }[];
  readonly exclude?: readonly string[];
}

const MONEY_THINGS = [
  'charges?', 'charged', 'bills?', 'billed', 'billing', 'invoices?', 'payments?', 'fees?', 'statements?',
  'transactions?', 'cards?', 'subscriptions?', 'debits?', 'debited', 'claims?', 'insurance', 'insurers?',
  'refunds?', 'money', 'accounts?', 'withdrawals?', 'paid', 'fines?', 'tickets?', 'penalt\\w*',
];
const MONEY_TROUBLE = [
  'wrong\\w*', 'incorrect\\w*', 'challeng\\w*', '(?:only|just) (?:had|got|received|ordered|used|bought)', 'mistakes?', 'errors?', 'erroneous', 'twice', 'double', 'overcharg\\w*', 'contest\\w*',
  'revers\\w*', 'appeal\\w*', 'denied', 'deny', 'refund\\w*', 'money back',
  '(?:should|supposed to|meant to) (?:have )?(?:been )?cover\\w*', '(?<=but )i (?:already |had )?(?:paid|cancell?ed|returned)',
  'never (?:had|got|received|ordered|agreed|authori[sz]ed|signed|made|did|used|bought|asked)',
  "(?:didn't|did not|never) (?:make|authori[sz]e|order|agree|sign up|buy|use|receive)",
  "(?:don't|do not|didn't) recogni[sz]e", 'never heard of', "(?:not|isn't|wasn't) mine",
  'without (?:my )?(?:permission|consent|authori[sz]ation)', 'unfair\\w*', 'disagree\\w*',
  'shouldn\'t have been', 'should not have been',
];

const PERSONAL_DATA = [
  'data', 'personal (?:information|info|details|data)', 'my (?:information|info|details|data|history)',
  "(?:information|info|details|data)(?=(?: [\\w']+){0,4} (?:about|on) me)", 'everything you (?:know|have|hold|keep|store|stored|\'ve stored)',
  'what you (?:know|have|hold|keep|store)', 'records?', 'recordings?', 'conversations?', 'call history',
  'health information', 'medical information',
];
const DATA_ACTIONS = [
  'delet\\w*', 'eras\\w*', 'remov\\w*', 'wip\\w*', 'forget', 'access', 'copy', 'export\\w*', 'download\\w*',
  'shar\\w*', 'send\\w*', 'sent', 'transfer\\w*', 'sell\\w*', 'sold', 'stor\\w*', 'keep\\w*', 'kept', 'hold\\w*', 'collect\\w*', 'track\\w*',
  'opt(?:ing)? out', 'handled', 'leak\\w*', 'breach\\w*', 'listen\\w*', 'who (?:has|can see|sees)',
];

/** The built-in packs, by topic name. */
export const BUILTIN_PACKS: Readonly<Record<string, BuiltinPack>> = Object.freeze({
  financial_dispute: {
    description: 'disputed charges, double billing, fraud, contested payments, insurance appeals',
    terms: [
      'disput\\w*', 'chargebacks?', 'charge back', 'overcharg\\w*', 'double (?:charg|bill)\\w*',
      '(?:charged|billed|paid|debited)(?: me| us)? twice', 'fraud\\w*', 'unauthori[sz]ed', 'scam\\w*',
      'identity theft', 'stolen (?:card|credit card|identity|bank details)', 'accounts? in my name',
    ],
    combos: [{ any: MONEY_THINGS, with: MONEY_TROUBLE }],
  },
  legal: {
    description: 'lawyers, lawsuits, courts, legal advice, regulators',
    terms: [
      'lawyers?', 'attorneys?', 'solicitors?', 'legal', 'legally', 'illegal\\w*', 'unlawful\\w*', 'lawsuits?', 'litigat\\w*',
      "(?:sue|suing|sued)(?= (?:you|them|him|her|us|me|the|your|my|their|this|that|a|an|for|over|someone|anyone|everyone)\\b)",
      "(?:i'll|i will|we'll|we will|going to|gonna|want to|threaten\\w* to) sue",
      '(?:in|to|at|into) court', 'court (?:case|date|order|summons|hearing|papers|action)', 'small claims',
      'summons', 'subpoena\\w*', 'malpractice', 'negligen\\w*', 'liabilit\\w*', 'cease and desist',
      'breach of contract', 'ombudsman', 'tribunal', 'report (?:you|this|it) to', 'regulators?',
      '(?:complaint|complain|report) (?:with|to) (?:the )?(?:[a-z]+ )?(?:board|regulator|commission|authority)',
    ],
  },
  data_privacy: {
    description: 'access to, deletion of or sharing of personal data; privacy complaints',
    terms: [
      'gdpr', 'ccpa', 'hipaa', 'right to be forgotten', 'data protection', 'personal data',
      'privacy (?:policy|request|complaint|concerns?|breach|violation|laws?|rights)', 'data (?:breach|request|leak)',
      'subject access',
    ],
    combos: [{ any: PERSONAL_DATA, with: DATA_ACTIONS }],
  },
  emergency: {
    description: 'the caller says it is an emergency',
    terms: ['emergenc\\w*'],
    exclude: [
      'emergency (?:number|contact|contacts|fund|kit|exit|brake|room number|line number)',
    ],
  },
  urgency: {
    description: 'time pressure: urgent, as soon as possible, right away',
    terms: ['urgent\\w*', 'asap', 'as soon as possible', 'right away', 'immediately', 'time sensitive'],
  },
  pain: {
    description: 'pain, injury and other physical distress',
    terms: [
      'pain', 'pains', 'painful', 'hurts?', 'hurting', 'aches?', 'aching', 'bleed\\w*', 'swollen', 'swelling',
      'throbb\\w*', 'blood', 'bloody', '(?:tooth|teeth|jaw|gums?|mouth|face|head|back|ear|stomach) (?:is|are) killing me', 'injur\\w*', 'infect\\w*', 'fever', 'agony', 'excruciating', 'unbearable', 'sore',
      "(?:can't|cannot) breathe",
    ],
    exclude: [
      'pain in the (?:neck|butt|ass|backside)', '(?:such a|a real|a royal|a bit of a|what a) pain', 'is a pain',
      'was a pain', 'growing pains', 'sore loser', 'sore point', 'sore subject',
      'blood (?:test|tests|pressure|type|work|sugar|donation|bank)', 'bloody (?:hell|annoying|ridiculous)',
    ],
  },
  scheduling: {
    description: 'appointments, meetings and bookings',
    terms: [
      'schedul\\w*', 'reschedul\\w*', 'appointments?', 'meetings?', 'stand ?ups?', 'bookings?', 'booked',
      'book (?:a|an|the|me|us|it|in|for|my|our|him|her|them|both)', 'slots?', 'availability',
      'set up a (?:call|meeting|chat)', 'move (?:my|the|our|all)', 'cancel (?:my|the|our|all)',
      'reservations?', 'reserve',
    ],
  },
  assistant: {
    description: 'errands an assistant runs: email, reminders, to-dos, drafts',
    terms: ['e ?mails?', 'remind\\w*', 'to ?dos?', 'to do list', 'errands?', 'draft\\w*', 'shopping list', 'look up'],
  },
  finance: {
    description: 'money: budgets, bills, payments, taxes, spending, banking',
    terms: [
      'money', 'budget\\w*', 'invoices?', 'invoic\\w*', 'bills?', 'billed', 'billing', 'subscriptions?', 'payments?', 'pay', 'paid', 'paying',
      'expenses?', 'tax', 'taxes', 'banks?', 'banking', 'salary', 'invest\\w*', 'stocks?', 'savings', 'spend\\w*',
      'spent', 'costs?', 'price\\w*', 'purchas\\w*', 'buy', 'buying', 'bought', 'refund\\w*', 'loans?',
      'mortgage', 'credit cards?', 'statements?', 'charges?', 'charged', 'fees?', 'accounting',
      'balance', 'euros?', 'dollars?', 'pounds', 'bucks',
      '[$€£] ?\\d[\\d,.]*', '\\d[\\d,.]* ?(?:k|grand)',
    ],
  },
  engineering: {
    description: 'software: code, bugs, builds, deploys, servers',
    terms: [
      'code', 'coding', 'bugs?', 'buggy', 'deploy\\w*', 'servers?', 'builds?', 'ci', 'pipelines?',
      'pull requests?', 'prs?', 'repos?', 'repository', 'api', 'apis', 'crash\\w*', 'databases?', 'scripts?',
      'staging', 'production', 'prod', 'lint\\w*', 'test suites?', 'unit tests?', 'failing tests?', 'migrations?',
      'commits?', 'merge\\w*', 'docker', 'kubernetes', 'outages?', 'login', 'logs',
    ],
    exclude: ['(?:zip|postal|area|discount|promo|dress) codes?', 'car crash\\w*'],
  },
  calendar: {
    description: 'the calendar: what is on, adding or sharing events',
    terms: ['calendars?', 'events?', 'invites?', 'invitations?', 'agenda', "what's on", 'what is on'],
  },
  messaging: {
    description: 'messages and chats, WhatsApp',
    terms: ['whats ?app', 'messages?', 'messag\\w*', 'text (?:me|him|her|them|mom|dad)', 'texts?', 'group chat', 'family group'],
  },
});

/**
 * Human-meaning nouns for explicit requests. Strong ones are enough on their own ("I want a
 * human"); weak ones ("someone") only count in a talk/transfer frame ("let me talk to someone"),
 * because "can someone help me" said to an assistant is not a request for a person.
 */
export const HUMAN_NOUNS_STRONG = [
  'humans?', 'human beings?', 'persons?', 'operators?', 'representatives?', 'reps?', 'agents?',
  'supervisors?', 'managers?', 'staff', 'staff members?', 'members? of (?:the |your )?(?:staff|team)', 'customer service', 'customer support',
  'someone (?:real|human|live)', 'somebody (?:real|human|live)', 'a real one',
];
export const HUMAN_NOUNS_WEAK = ['someone', 'somebody', 'anyone', 'anybody', 'whoever', 'people'];
export const HUMAN_ADJECTIVES = ['real', 'live', 'actual', 'proper', 'human', 'flesh and blood', 'breathing', 'normal', 'regular', 'other'];

/** Assistant phrases that say it did not understand. */
export const FAILURE_PHRASES = [
  "(?:didn't|did not|couldn't|could not) (?:quite )?(?:catch|get|hear|understand|follow)",
  "(?:don't|do not) (?:quite )?(?:understand|follow)",
  "not sure (?:what|i understand|i follow|i understood)",
  '(?:could|can|would) you (?:please )?(?:repeat|rephrase|say (?:that|it) again|say again)',
  'say that again', 'repeat that', 'what do you mean', 'pardon', 'come again',
];

/** Caller phrases that complain about not being understood. */
export const FRUSTRATION_PHRASES = [
  "(?:you're|you are|ur) not listening", 'are you (?:even )?listening', '(?:already|just) (?:told|said|asked)',
  '(?:told|said|asked) (?:you )?(?:twice|three times|already|again)', "that's not what i (?:said|asked|meant)",
  "you (?:don't|do not|still don't) (?:understand|get it)", "you're not understanding", 'how many times',
  'for the (?:second|third|last) time', 'not what i said',
];

/** A later phrase that takes back an earlier request ("Actually, never mind"). */
export const RETRACTION = [
  'never ?mind', 'forget (?:it|that|about it)', 'scratch that', 'cancel that', 'no wait', 'actually no',
  'you can (?:do|handle|help with) (?:it|this|that)', "i'll stay", 'stay with you', "don't bother",
];

/** Phrases that declare a problem over or not pressing, after it was mentioned. */
export const RESOLUTION = [
  "(?:it|that|this|the pain)(?:'s| is| has| was)? (?:completely |totally |all )?(?:gone|went away|cleared up|stopped|resolved|better now)",
  "(?:it|that|this)(?:'s| is)? (?:all )?(?:sorted|taken care of)", 'it can wait', 'can wait until', 'no rush',
  'no hurry', 'not in a hurry', 'already (?:refunded|resolved|sorted|fixed|settled|reversed|credited)',
  'all good',
];

/** How a caller starts saying yes to an offer. */
export const AFFIRMATIVE = /^(?:yes|yeah|yep|yup|ya|sure|ok|okay|please|absolutely|definitely|of course|go ahead|do it|do that|that would be|sounds good|alright|all right|right|correct|perfect|great|please do)(?![\p{L}\p{N}])/u;

/** How a caller starts saying no to an offer. */
export const DECLINE = /^(?:no|nah|nope|not now|not really|i'm good|i'm fine|it's fine|that's ok|that's okay|don't)(?![\p{L}\p{N}])|no,? thanks|no thank you/u;
