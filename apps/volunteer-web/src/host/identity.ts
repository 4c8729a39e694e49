import type { KeyValueStore } from './kv-store.ts';

/** Who this browser profile is to the coordinator; the secret proves it on reconnect. */
export interface HostIdentity {
  hostId: string;
  secret: string;
}

const KEY = 'identity';

export async function loadIdentity(store: KeyValueStore): Promise<HostIdentity | null> {
  const stored = await store.get<unknown>(KEY);
  if (typeof stored !== 'object' || stored === null) return null;
  const { hostId, secret } = stored as Partial<HostIdentity>;
  return typeof hostId === 'string' && typeof secret === 'string' ? { hostId, secret } : null;
}

export function saveIdentity(store: KeyValueStore, identity: HostIdentity): Promise<void> {
  return store.set(KEY, { hostId: identity.hostId, secret: identity.secret });
}
