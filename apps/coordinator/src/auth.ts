import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { WebpvmError } from '@webpvm/vm-protocol';
import type { Store, StoredToken } from './store/store.ts';

/** A researcher's identity, as carried by a bearer token. */
export interface Principal {
  tokenId: string;
  admin: boolean;
}

/** A job is visible to its owner and to admins; to anyone else it does not exist. */
export const canSee = (p: Principal, owner: string): boolean => p.admin || owner === p.tokenId;

export const hashSecret = (secret: string): string => createHash('sha256').update(secret).digest('hex');

/** A volunteer is named by a hash of its key: the key itself proves it and stays with its browser. */
export const volunteerIdOf = (key: string): string => `v${hashSecret(key).slice(0, 16)}`;

export const newSecret = (prefix: string): string => `${prefix}${randomBytes(24).toString('base64url')}`;

/** Bearer tokens, stored only as hashes: a stolen database gives no usable token. */
export class TokenAuth {
  constructor(private readonly store: Store) {}

  /**
   * Makes sure an admin token exists: the fixed one from the environment, or on the very first
   * start a generated one, returned so that it can be printed once.
   */
  async bootstrap(fixedAdminToken: string | null): Promise<string | null> {
    if (fixedAdminToken) {
      if (!(await this.store.findToken(hashSecret(fixedAdminToken)))) await this.insert(fixedAdminToken, 'admin (WEBPVM_ADMIN_TOKEN)', true);
      return null;
    }
    if ((await this.store.countTokens()) > 0) return null;
    const token = newSecret('wpvm_');
    await this.insert(token, 'admin', true);
    return token;
  }

  async create(name: string, admin: boolean): Promise<{ id: string; token: string }> {
    const token = newSecret('wpvm_');
    const stored = await this.insert(token, name, admin);
    return { id: stored.id, token };
  }

  async authenticate(header: string | undefined): Promise<Principal> {
    const match = /^Bearer\s+(\S+)$/i.exec(header ?? '');
    if (!match) throw new WebpvmError('E_UNAUTHORIZED', 'missing bearer token (Authorization: Bearer <token>)');
    const stored = await this.store.findToken(hashSecret(match[1]!));
    if (!stored) throw new WebpvmError('E_UNAUTHORIZED', 'unknown token');
    return { tokenId: stored.id, admin: stored.admin };
  }

  private async insert(token: string, name: string, admin: boolean): Promise<StoredToken> {
    const stored: StoredToken = { id: randomUUID(), name, hash: hashSecret(token), admin, createdAt: Date.now() };
    await this.store.insertToken(stored);
    return stored;
  }
}
