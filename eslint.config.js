// Boundaries checked by tools: no import cycles anywhere, and the raft core, the raft driver with NC
// (src/controller/driver) and the simulator stay free of I/O, timers, clocks and the rest of the
// controller: the simulator runs the driver exactly as the controller does.
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'test/jepsen-lite/runs/**', 'test/jepsen-lite/.product/**'] },
  {
    files: ['**/*.ts'],
    languageOptions: { parser: tseslint.parser, parserOptions: { project: ['./tsconfig.json', './src/dashboard/tsconfig.json'] } },
    plugins: { '@typescript-eslint': tseslint.plugin, 'import-x': importX },
    settings: { 'import-x/resolver': { node: { extensions: ['.ts', '.js'] } } },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      '@typescript-eslint/consistent-type-imports': ['error', { prefer: 'type-imports' }],
      '@typescript-eslint/no-floating-promises': 'error',
    },
  },
  {
    files: ['src/raft/**/*.ts', 'src/sim/**/*.ts', 'src/controller/driver/**/*.ts'],
    ignores: ['src/sim/cli.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['node:*', 'fs', 'net', 'child_process', 'timers', 'os', 'dgram', 'http', 'https', 'tls', 'worker_threads'],
            message: 'src/raft (and the simulator built on it) is pure: no I/O, timers or clocks.' },
          { regex: '(^|/)(controller/(?!driver/)|bihactl/)', message: 'src/raft and src/sim must not depend on the controller (except its driver) or the CLI.' },
          { group: ['../pg/**', '../bcp/**', '../bridge/**', '../ops/**', '../security/**', '../state/**', '../*.js'], message: 'the driver reaches the controller only through its interfaces (driver/types.ts).' },
        ],
      }],
      'no-restricted-globals': ['error',
        { name: 'setTimeout', message: 'time is an input (tick) in src/raft' },
        { name: 'setInterval', message: 'time is an input (tick) in src/raft' },
        { name: 'setImmediate', message: 'time is an input (tick) in src/raft' },
        { name: 'performance', message: 'time is an input (tick) in src/raft' },
        { name: 'process', message: 'src/raft has no process access' },
        { name: 'require', message: 'src/raft has no dynamic loading' },
      ],
      'no-restricted-properties': ['error',
        { object: 'Date', property: 'now', message: 'time is an input (tick) in src/raft' },
        { object: 'Math', property: 'random', message: 'randomness is injected in src/raft' },
      ],
      'no-restricted-syntax': ['error', { selector: "NewExpression[callee.name='Date']", message: 'no clocks in src/raft' }],
    },
  },
);
