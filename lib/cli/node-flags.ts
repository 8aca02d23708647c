// V8 flags every node process runs with: `bin/influencer-node.js` carries them in its first line
// (`#!/usr/bin/env -S node ...`), and the commands that start nodes as `node <bin>` (the demo, the
// benchmark) pass them too.
//
// A young generation of up to 64 MB a semi-space (V8's default is 16 on 64-bit): a node allocates per
// sample (request, response, batch) and nearly all of it dies young, so a larger nursery means fewer
// scavenges. Measured with `npm run bench -- --quick --only 10 --pks 100000`, alternately, two runs
// each: garbage collection 7.5 and 7.3 µs a sample before, 1.5 and 1.5 after; the node 48.0 and 55.3
// µs a sample before, 44.2 and 41.3 after; RSS 240 MB before, 243-250 after.
export const NODE_FLAGS = ['--max-semi-space-size=64'] as const;
