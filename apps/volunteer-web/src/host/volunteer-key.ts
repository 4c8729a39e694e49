import { VolunteerKey } from '@webpvm/vm-protocol';
import { createStore } from 'idb-keyval';

/** The browser profile's own database, beside its seats' (profile-seat.ts): every tab reads the same. */
const PROFILE_DB = 'webpvm-profile';
const KEY = 'volunteer';

function newVolunteerKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
}

/**
 * This browser profile's volunteer key (vm-protocol `hello.volunteer`), made on its first visit.
 * Tabs of a fresh profile opened together all look for it at once: the read and the write are one
 * readwrite transaction, which IndexedDB runs one after another, so every tab ends up with the
 * first one's key — one volunteer, however many tabs.
 */
export async function profileVolunteerKey(dbName = PROFILE_DB): Promise<string> {
  const store = createStore(dbName, 'state');
  return store(
    'readwrite',
    (objects) =>
      new Promise<string>((resolve, reject) => {
        const read = objects.get(KEY);
        read.onerror = () => reject(read.error);
        read.onsuccess = () => {
          const found = VolunteerKey.safeParse(read.result);
          if (found.success) return resolve(found.data);
          const fresh = newVolunteerKey();
          objects.put(fresh, KEY);
          objects.transaction.oncomplete = () => resolve(fresh);
          objects.transaction.onerror = () => reject(objects.transaction.error);
        };
      }),
  );
}
