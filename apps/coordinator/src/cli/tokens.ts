import type { TokenQuotas, TokenScope } from '@webpvm/vm-protocol';
import { ApiClient, type ClientOptions } from './api-client.ts';
import { printJson, say, tokenTable } from './output.ts';

export interface TokenCreateOptions extends ClientOptions {
  name?: string;
  admin?: boolean;
  scope?: TokenScope;
  expiresInDays?: number;
  maxJobs?: number;
  maxTasks?: number;
  maxBytes?: number;
  maxRunning?: number;
}

export interface TokenListOptions extends ClientOptions {
  json?: boolean;
}

/** Only the token goes to stdout, so `WEBPVM_TOKEN=$(webpvm token create)` works. */
export async function createToken(options: TokenCreateOptions): Promise<void> {
  const scope = options.scope ?? (options.admin ? 'admin' : undefined);
  const quotas: TokenQuotas = {
    ...(options.maxJobs === undefined ? {} : { jobs: options.maxJobs }),
    ...(options.maxTasks === undefined ? {} : { tasks: options.maxTasks }),
    ...(options.maxBytes === undefined ? {} : { bytes: options.maxBytes }),
    ...(options.maxRunning === undefined ? {} : { running: options.maxRunning }),
  };
  const created = await new ApiClient(options).createToken({
    ...(options.name === undefined ? {} : { name: options.name }),
    ...(scope === undefined ? {} : { scope }),
    ...(options.expiresInDays === undefined ? {} : { expiresInDays: options.expiresInDays }),
    ...(Object.keys(quotas).length ? { quotas } : {}),
  });
  const expiry = created.expiresAt ? `, until ${created.expiresAt}` : '';
  say(`token ${created.id} "${created.name}" (${created.scope}${expiry}): it will not be shown again`);
  process.stdout.write(`${created.token}\n`);
}

export async function listTokens(options: TokenListOptions): Promise<void> {
  const list = await new ApiClient(options).listTokens();
  if (options.json) printJson(list);
  else process.stdout.write(list.tokens.length === 0 ? 'no tokens\n' : `${tokenTable(list.tokens)}\n`);
}

export async function revokeToken(id: string, options: ClientOptions): Promise<void> {
  const revoked = await new ApiClient(options).revokeToken(id);
  say(`token ${revoked.id} "${revoked.name}" revoked: it opens nothing from now on`);
}
