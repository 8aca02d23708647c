// The text of .env.example, made from the settings table so the two cannot drift apart
// (test/unit/ops/config.test.ts compares; `npm run env-example` rewrites the file).
import { SETTINGS, shownDefault } from './config.js';

const HEADER = `# influencer-node settings, each commented out with its default: a copy of this file (to .env, read at
# start from the working directory, or to /etc/influencer-node/env for systemd) changes nothing until
# a line is uncommented. A CLI flag wins over the environment, which wins over .env.
# Under systemd never set NODE_ID or METRICS_PORT in the shared env file: the unit sets them per instance.
`;

export function renderEnvExample(): string {
  const blocks = Object.values(SETTINGS).map((s) => `# ${s.help}\n# ${s.env}=${shownDefault(s)}\n`);
  return [HEADER, ...blocks].join('\n');
}
