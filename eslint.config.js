// Lint rules: typescript-eslint's recommended set, floating promises as errors (a forgotten await on an
// activity or a store call is a bug), and the Temporal samples' override that keeps Node builtins and
// heavy libraries out of workflow code, which must stay deterministic.
import { builtinModules } from 'node:module';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const ALLOWED_NODE_BUILTINS = new Set(['assert']);
const restrictedInWorkflows = [
  ...builtinModules.filter((m) => !ALLOWED_NODE_BUILTINS.has(m)).flatMap((m) => [m, `node:${m}`]),
  '@tensorflow/tfjs',
  '@tensorflow/tfjs-core',
  '@tensorflow/tfjs-layers',
  '@tensorflow/tfjs-backend-cpu',
  'apache-arrow',
  '@aws-sdk/client-s3',
  '@temporalio/activity',
  '@temporalio/worker',
  '@temporalio/client',
];

export default tseslint.config(
  { ignores: ['node_modules/**', '.tools/**', '.paramtrail/**', '**/*.js', '**/*.mjs'] },
  {
    files: ['**/*.ts'],
    extends: [js.configs.recommended, ...tseslint.configs.recommended],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // node:test's describe/test return promises that the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'test', 'it', 'suite'] }] },
      ],
      '@typescript-eslint/no-unused-vars': ['warn', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  {
    files: ['workflows/**/*.ts', 'config/grid.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        { paths: restrictedInWorkflows.map((name) => ({ name, allowTypeImports: true })) },
      ],
    },
  },
);
