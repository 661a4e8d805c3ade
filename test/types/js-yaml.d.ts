// The js-yaml functions the tests and benchmarks use (the package ships no types of its own).
declare module 'js-yaml' {
  export function load(text: string): unknown;
  export function dump(value: unknown, options?: { lineWidth?: number; noRefs?: boolean; sortKeys?: boolean }): string;
}
