// The V8 flags a node runs with reach it however it is started: the bin's first line carries them
// (npx, the systemd units, a shell), and running the bin itself, not through `node`, works.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import t from 'tap';
import { NODE_FLAGS } from '../../../lib/cli/node-flags.js';
import { BIN } from '../../kit/children.js';

t.test("the bin's first line runs node with the node flags", async (t) => {
  const first = readFileSync(BIN, 'utf8').split('\n')[0];
  t.equal(first, `#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`);
});

t.test('the bin runs as a program, the flags in effect', async (t) => {
  const env = { ...process.env, NODE_OPTIONS: '' };
  t.match(execFileSync(BIN, ['--version'], { env, encoding: 'utf8' }), /\d+\.\d+\.\d+/);
  // the same interpreter line, asked what V8 was given
  const shebang = readFileSync(BIN, 'utf8').split('\n')[0]!.slice(2).split(' ');
  const [envBin, ...rest] = shebang;
  const args = [...rest, '-e', 'process.stdout.write(JSON.stringify(process.execArgv))'];
  const execArgv = JSON.parse(execFileSync(envBin!, args, { env, encoding: 'utf8' })) as string[];
  t.same(execArgv.slice(0, NODE_FLAGS.length), NODE_FLAGS);
});
