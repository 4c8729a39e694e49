import { WebpvmError } from '@webpvm/vm-protocol';

export function errorText(error: unknown): string {
  if (error instanceof WebpvmError) return `${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}
