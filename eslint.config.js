// Lint for the TypeScript sources: typescript-eslint's recommended rules, type-aware,
// and the services' boundaries: a service imports only its own folder and services/lib;
// the CLI imports a service only through its index.ts (tests may reach inside).
import tseslint from 'typescript-eslint';

const SERVICES = ['sensor', 'enforcer', 'exporter', 'api', 'cli'];

/** A service folder's files may not import another service's (or the CLI's) modules. */
function serviceBoundary(service) {
  const others = SERVICES.filter((s) => s !== service).join('|');
  return {
    files: [`services/${service}/**/*.ts`],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ regex: `(^|/)(${others})/`, message: `services/${service} meets other services only at the proto and the bus: import services/lib, not another service.` }],
      }],
    },
  };
}

export default tseslint.config(
  { ignores: ['dist/**', 'build/**', 'native/build/**', 'node_modules/**', 'bin/**', 'eslint.config.js'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
      'no-constant-condition': ['error', { checkLoops: false }],
      eqeqeq: ['error', 'always'],
    },
  },
  ...['sensor', 'enforcer', 'exporter', 'api'].map(serviceBoundary),
  {
    files: ['services/lib/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ regex: `(^|/)(${SERVICES.join('|')})/`, message: 'services/lib is shared by every service and imports none of them.' }],
      }],
    },
  },
  {
    files: ['services/cli/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ regex: '(^|/)(sensor|enforcer|exporter|api)/(?!index\\.js$)', message: 'The CLI uses a service through its public entry, services/<service>/index.ts.' }],
      }],
    },
  },
);
