#!/usr/bin/env -S node --max-semi-space-size=64
import { main } from '../dist/lib/cli/cli.js';

main(process.argv.slice(2)).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code;
  },
  (err) => {
    console.error(`influencer-node: ${err?.message ?? err}`);
    process.exit(1);
  },
);
