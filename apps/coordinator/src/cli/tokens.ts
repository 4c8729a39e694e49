import { ApiClient, type ClientOptions } from './api-client.ts';
import { say } from './output.ts';

export interface TokenCreateOptions extends ClientOptions {
  name?: string;
  admin?: boolean;
}

/** Only the token goes to stdout, so `WEBPVM_TOKEN=$(webpvm token create)` works. */
export async function createToken(options: TokenCreateOptions): Promise<void> {
  const created = await new ApiClient(options).createToken({ name: options.name, admin: options.admin ?? false });
  say(`token ${created.id} "${created.name}"${created.admin ? ' (admin)' : ''}: it will not be shown again`);
  process.stdout.write(`${created.token}\n`);
}
