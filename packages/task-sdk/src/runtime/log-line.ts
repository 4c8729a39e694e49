import { LIMITS } from '@webpvm/vm-protocol/limits';

/** Cuts a text to the longest line the protocol carries. */
export function truncateLine(text: string): string {
  return text.length > LIMITS.logLineChars ? `${text.slice(0, LIMITS.logLineChars - 1)}…` : text;
}

/** The arguments of `ctx.log`, formatted about like `console.log` does, on one line. */
export function formatLogLine(args: readonly unknown[]): string {
  return truncateLine(args.map(formatArg).join(' ').replace(/\s*\r?\n\s*/g, ' | '));
}

function formatArg(arg: unknown): string {
  if (typeof arg === 'string') return arg;
  if (arg instanceof Error) return arg.stack ?? `${arg.name}: ${arg.message}`;
  if (typeof arg === 'bigint') return `${arg}n`;
  if (typeof arg === 'object' && arg !== null) {
    try {
      return JSON.stringify(arg) ?? String(arg);
    } catch {
      return String(arg);
    }
  }
  return String(arg);
}
