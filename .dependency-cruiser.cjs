// The dependency direction, checked by `npm run lint` (and so by .ci/run): no cycles; the folders of
// lib/ in layers, each importing only the layers below it; the library never depends on its commands
// (only the CLI's dispatcher does), nor on tests, benchmarks or the chaos suite; storage knows nothing
// of polling, and of the cluster only its locks and member cards.

/**
 * The folders of lib/ from the bottom up. A folder imports its own files and the layers below it,
 * never a layer above nor a sibling of its own layer: the core (shared to read) knows nothing of how
 * the process is run (ops/: settings table, metrics, embedded servers, signals), the node or the CLI.
 */
const LAYERS = [
  ['shared'], // connections, keys, logging, version: imports nothing of lib
  ['lua', 'ring'],
  ['cluster'],
  ['storage'],
  ['polling', 'read'],
  ['ops', 'mock'],
  ['node.ts'],
  ['cli'],
];

const folderPath = (folder) => `^lib/${folder.replace('.', '\\.')}${folder.endsWith('.ts') ? '$' : '/'}`;

const layerRules = LAYERS.flatMap((layer, i) =>
  layer.map((folder) => ({
    name: `layer-${folder.replace('.ts', '')}`,
    comment: `lib/${folder} imports only ${LAYERS.slice(0, i).flat().join(', ') || 'nothing of lib'}`,
    severity: 'error',
    from: { path: folderPath(folder) },
    to: { path: '^lib/', pathNot: [folder, ...LAYERS.slice(0, i).flat()].map(folderPath) },
  })),
);

module.exports = {
  forbidden: [
    ...layerRules,
    { name: 'no-cycles', severity: 'error', from: {}, to: { circular: true } },
    {
      name: 'library-not-on-commands',
      comment: 'lib/cli/commands/* use the library; only lib/cli/cli.ts dispatches to them',
      severity: 'error',
      from: { path: '^lib/', pathNot: ['^lib/cli/cli\\.ts$', '^lib/cli/commands/'] },
      to: { path: '^lib/cli/commands/' },
    },
    {
      name: 'library-not-on-tooling',
      severity: 'error',
      from: { path: '^(lib|bin)/' },
      to: { path: '^(test|bench|chaos)/' },
    },
    {
      name: 'storage-not-on-polling',
      comment: 'samples reach storage as plain data; storage never calls the poller or the daily check',
      severity: 'error',
      from: { path: '^lib/storage/' },
      to: { path: '^lib/polling/' },
    },
    {
      name: 'storage-on-cluster-locks-and-cards-only',
      comment:
        'storage takes the cluster lock, reads the member cards and lists what it quarantines, nothing else of the cluster',
      severity: 'error',
      from: { path: '^lib/storage/' },
      to: {
        path: '^lib/cluster/',
        pathNot: ['^lib/cluster/locks\\.ts$', '^lib/cluster/member-view\\.ts$', '^lib/cluster/quarantine-list\\.ts$'],
      },
    },
    {
      name: 'storage-format-at-the-bottom',
      comment: 'the formats (bytes, codec, layout, documents) depend on no other part of storage',
      severity: 'error',
      from: { path: '^lib/storage/format/' },
      to: { path: '^lib/storage/(write|state|jobs|read)/' },
    },
    {
      name: 'storage-jobs-independent',
      comment: 'a job (closer, rebuild, retention, migrate) depends on format, write and state, never on another job',
      severity: 'error',
      from: { path: '^lib/storage/jobs/(closer|rebuild|retention|migrate)\\.ts$' },
      to: { path: '^lib/storage/jobs/(closer|rebuild|retention|migrate)\\.ts$' },
    },
    {
      name: 'storage-write-not-on-jobs-or-reads',
      severity: 'error',
      from: { path: '^lib/storage/(write|state)/' },
      to: { path: '^lib/storage/(jobs|read)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
  },
};
