// Bad input against a running cluster: member keys holding garbage (not JSON, an old card format,
// a card naming another id), unknown commands and flags, malformed settings.
import t from 'tap';
import { badInput, garbageMembers } from './faults.js';
import { chaosSuite } from './suite.js';

await chaosSuite(t, 'input', [garbageMembers, badInput]);
