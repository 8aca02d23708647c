// The dependency direction, checked by `npm run lint` (and so by .ci/run): no cycles; the library
// never depends on its commands (only the CLI and the node's wiring do), nor on tests, benchmarks
// or the chaos suite.
module.exports = {
  forbidden: [
    { name: 'no-cycles', severity: 'error', from: {}, to: { circular: true } },
    {
      name: 'library-not-on-commands',
      comment: 'lib/commands/* use the library; only lib/cli.ts dispatches to them',
      severity: 'error',
      from: { path: '^lib/', pathNot: ['^lib/cli\\.ts$', '^lib/commands/'] },
      to: { path: '^lib/commands/' },
    },
    {
      name: 'library-not-on-tooling',
      severity: 'error',
      from: { path: '^(lib|bin)/' },
      to: { path: '^(test|bench|chaos)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
  },
};
