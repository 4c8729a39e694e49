import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { type TokenQuotas, type TokenScope, WebpvmError } from '@webpvm/vm-protocol';
import type { Store, StoredToken } from './store/store.ts';

/** A researcher's identity, as carried by a bearer token. */
export interface Principal {
  tokenId: string;
  /** What its owner may hold at once (an admin's making). */
  quotas: TokenQuotas;
  /** Whose jobs it sees: its own id, or for a read token its maker's owner. */
  owner: string;
  scope: TokenScope;
  admin: boolean;
}

/** A job is visible to its owner's tokens and to admins; to anyone else it does not exist. */
export const canSee = (p: Principal, owner: string): boolean => p.admin || owner === p.owner;

/** Refuses a token whose scope does not reach `needed` (read < submit < admin). */
export function requireScope(p: Principal, needed: TokenScope, doing: string): void {
  const rank = { read: 0, submit: 1, admin: 2 } as const;
  if (rank[p.scope] < rank[needed]) throw new WebpvmError('E_FORBIDDEN', `a ${p.scope} token may not ${doing}: that takes a ${needed} token`);
}

export const hashSecret = (secret: string): string => createHash('sha256').update(secret).digest('hex');

/** A volunteer is named by a hash of its key: the key itself proves it and stays with its browser. */
export const volunteerIdOf = (key: string): string => `v${hashSecret(key).slice(0, 16)}`;

export const newSecret = (prefix: string): string => `${prefix}${randomBytes(24).toString('base64url')}`;

/** The least a fixed admin token (WEBPVM_ADMIN_TOKEN) must be: it opens everything. */
const ADMIN_TOKEN_CHARS = 16;
const ADMIN_TOKEN_DISTINCT = 8;
const DAY_MS = 24 * 3600 * 1000;

export interface NewToken {
  name: string;
  scope: TokenScope;
  expiresInDays: number | null;
  quotas?: TokenQuotas;
}

/** Bearer tokens, stored only as hashes: a stolen database gives no usable token. */
export class TokenAuth {
  constructor(
    private readonly store: Store,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Makes sure an admin token exists: the fixed one from the environment, or on the very first
   * start a generated one, returned so that it can be printed once.
   */
  async bootstrap(fixedAdminToken: string | null): Promise<string | null> {
    if (fixedAdminToken) {
      if (fixedAdminToken.length < ADMIN_TOKEN_CHARS || new Set(fixedAdminToken).size < ADMIN_TOKEN_DISTINCT) {
        throw new WebpvmError('E_BAD_REQUEST', `WEBPVM_ADMIN_TOKEN is too easy to guess: use at least ${ADMIN_TOKEN_CHARS} characters, ${ADMIN_TOKEN_DISTINCT} of them different (or let the first start make one)`);
      }
      if (!(await this.store.findToken(hashSecret(fixedAdminToken)))) await this.insert(fixedAdminToken, { name: 'admin (WEBPVM_ADMIN_TOKEN)', scope: 'admin', expiresInDays: null }, null);
      return null;
    }
    if ((await this.store.countTokens()) > 0) return null;
    const token = newSecret('wpvm_');
    await this.insert(token, { name: 'admin', scope: 'admin', expiresInDays: null }, null);
    return token;
  }

  /**
   * A new token made by `maker`: an admin makes any; a submit token makes read tokens for its
   * own jobs; a read token makes none.
   */
  async create(maker: Principal, request: NewToken): Promise<{ stored: StoredToken; token: string }> {
    if (maker.scope === 'read') throw new WebpvmError('E_FORBIDDEN', 'a read token may not make tokens');
    if (maker.scope === 'submit' && request.scope !== 'read') throw new WebpvmError('E_FORBIDDEN', 'a submit token makes read tokens only, for its own jobs: admin and submit tokens take an admin token');
    if (!maker.admin && request.quotas && Object.keys(request.quotas).length) throw new WebpvmError('E_FORBIDDEN', 'only an admin token sets quotas');
    const token = newSecret('wpvm_');
    const stored = await this.insert(token, request, request.scope === 'read' ? maker.owner : null);
    return { stored, token };
  }

  async authenticate(header: string | undefined): Promise<Principal> {
    const match = /^Bearer\s+(\S+)$/i.exec(header ?? '');
    if (!match) throw new WebpvmError('E_UNAUTHORIZED', 'missing bearer token (Authorization: Bearer <token>)');
    const stored = await this.store.findToken(hashSecret(match[1]!));
    if (!stored) throw new WebpvmError('E_UNAUTHORIZED', 'unknown token');
    if (stored.revokedAt !== null) throw new WebpvmError('E_UNAUTHORIZED', 'this token was revoked');
    if (stored.expiresAt !== null && stored.expiresAt <= this.now()) throw new WebpvmError('E_UNAUTHORIZED', 'this token has expired');
    return { tokenId: stored.id, owner: stored.owner, scope: stored.scope, admin: stored.scope === 'admin', quotas: stored.quotas };
  }

  /** The tokens `p` may see: every one for an admin, its owner's for the others. */
  list(p: Principal): Promise<StoredToken[]> {
    return this.store.listTokens(p.admin ? null : p.owner, 1000);
  }

  /** Revokes a token: an admin any, a submit token its owner's. Null when `p` sees no such token not yet revoked. */
  async revoke(p: Principal, id: string): Promise<StoredToken | null> {
    requireScope(p, 'submit', 'revoke tokens');
    const stored = await this.store.getToken(id);
    if (!stored || !(p.admin || stored.owner === p.owner)) return null;
    if (!(await this.store.revokeToken(id, this.now()))) return null;
    return { ...stored, revokedAt: this.now() };
  }

  private async insert(token: string, request: NewToken, owner: string | null): Promise<StoredToken> {
    const id = randomUUID();
    const createdAt = this.now();
    const stored: StoredToken = {
      id,
      name: request.name,
      hash: hashSecret(token),
      scope: request.scope,
      owner: owner ?? id,
      createdAt,
      expiresAt: request.expiresInDays === null ? null : createdAt + request.expiresInDays * DAY_MS,
      revokedAt: null,
      quotas: request.quotas ?? {},
    };
    await this.store.insertToken(stored);
    return stored;
  }
}
