/**
 * Command-line flags of the bench scripts (`--name value`), parsed in one
 * place: a flag given without its value, or a number that is not one, stops
 * the script with a clear error instead of running with undefined or NaN.
 */
export function textFlag(args: readonly string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const value = args[i + 1];
  if (value === undefined || value.startsWith('--')) throw new Error(`--${name} needs a value`);
  return value;
}

export function numberFlag(args: readonly string[], name: string, dflt: number): number {
  const text = textFlag(args, name);
  if (text === undefined) return dflt;
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n)) throw new Error(`--${name} must be a number, not ${JSON.stringify(text)}`);
  return n;
}
