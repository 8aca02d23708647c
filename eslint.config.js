// The linter: ESLint's and typescript-eslint's recommended rules over every TypeScript file and the
// CLI entry point, run by `npm run lint` (and by .ci/run) with no warning allowed.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      'lib/read/dashboard/**',
      'bench/results/**',
      '.chaos/**',
      'coverage/**',
      '.tap/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  { languageOptions: { globals: globals.node } },
  {
    rules: {
      // a leading underscore names what is left out on purpose (a destructured field, an argument)
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
    },
  },
);
