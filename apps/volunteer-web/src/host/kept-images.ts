import { type CoordinatorMessageOf, ImageAssembly, type ImagePartHeader, LIMITS, imageParts } from '@webpvm/vm-protocol';
import type { OutboxFrame } from './coordinator-outbox.ts';
import type { KeyValueStore } from './kv-store.ts';

export interface KeptImagesOptions {
  /** The tab's seat database (profile-seat.ts): its host's own, as is its identity. */
  store: KeyValueStore;
  /** To the coordinator, in order with the page's other frames (coordinator-outbox.ts). */
  send(frame: OutboxFrame): void;
}

interface StoredImage {
  image: number;
  bytes: Uint8Array;
}

const PREFIX = 'kept:';
/** Each image's size apart from it: reading sizes must not read every image. */
const SIZE_PREFIX = 'kept-size:';

/**
 * Checkpoint images of other volunteers' tasks that this host keeps for the coordinator, in
 * IndexedDB (`keep-image`): each too large for the coordinator, and needed should its task's own
 * tab die. One per task, the latest; LIMITS.keptImageBytes in all. Given back through the
 * coordinator when asked (`return-image`), which checks it against the hash it noted. After each
 * welcome the coordinator hears what is kept here and says what to forget: images of a browser
 * that was killed are forgotten once a tab takes its seat again, or kept if still needed.
 */
export class KeptImages {
  #options: KeptImagesOptions;
  #parts = new ImageAssembly(LIMITS.imageBytes);
  /** tid → bytes of what is stored, read once from the store (`#load`). */
  #sizes: Promise<Map<string, number>> | null = null;

  constructor(options: KeptImagesOptions) {
    this.#options = options;
  }

  /** A piece of an image to keep, from the coordinator. */
  part(header: ImagePartHeader, bytes: Uint8Array): void {
    const problem = this.#parts.add(header, bytes);
    if (problem) console.warn(`webpvm: dropped a part of an image to keep: ${problem.message}`);
  }

  /** The image whose parts came is stored, then the coordinator hears it is kept; one that did not come whole, or finds no room, is not. */
  async keep(m: CoordinatorMessageOf<'keep-image'>): Promise<void> {
    const bytes = this.#parts.take(m.tid, m.attempt, m.image);
    const sizes = await this.#load();
    if (!bytes || bytes.byteLength !== m.imageBytes) return console.warn(`webpvm: the image of ${m.tid} to keep did not come whole`);
    let total = 0;
    for (const [tid, size] of sizes) if (tid !== m.tid) total += size;
    if (total + bytes.byteLength > LIMITS.keptImageBytes) return console.warn(`webpvm: no room to keep the image of ${m.tid}`);
    await this.#options.store.write(
      [
        [PREFIX + m.tid, { image: m.image, bytes } satisfies StoredImage],
        [SIZE_PREFIX + m.tid, bytes.byteLength],
      ],
      [],
    );
    sizes.set(m.tid, bytes.byteLength);
    this.#options.send({ type: 'image-kept', tid: m.tid, image: m.image });
  }

  /** The image kept for `tid` goes back through the coordinator, as the parts it asked for. */
  async give(m: CoordinatorMessageOf<'return-image'>): Promise<void> {
    const stored = await this.#options.store.get<StoredImage>(PREFIX + m.tid);
    if (stored?.image !== m.image) return console.warn(`webpvm: asked for an image of ${m.tid} not kept here`);
    for (const part of imageParts(m.tid, m.attempt, stored.bytes, m.image)) this.#options.send(part);
    this.#options.send({ type: 'image-returned', tid: m.tid, attempt: m.attempt, image: m.image });
  }

  async forget(tids: readonly string[]): Promise<void> {
    const sizes = await this.#load();
    for (const tid of tids) {
      sizes.delete(tid);
      this.#parts.forget(tid);
    }
    await this.#options.store.delMany(tids.flatMap((tid) => [PREFIX + tid, SIZE_PREFIX + tid]));
  }

  /** After a welcome: the coordinator hears what is kept here, and says what to forget. */
  async welcome(): Promise<void> {
    const tids = [...(await this.#load()).keys()];
    for (let i = 0; i < tids.length; i += LIMITS.itemsPerBatch) this.#options.send({ type: 'images-kept', tids: tids.slice(i, i + LIMITS.itemsPerBatch) });
  }

  #load(): Promise<Map<string, number>> {
    this.#sizes ??= (async () => {
      const sizes = new Map<string, number>();
      for (const key of await this.#options.store.keys()) {
        const size = key.startsWith(SIZE_PREFIX) ? await this.#options.store.get<number>(key) : undefined;
        if (size !== undefined) sizes.set(key.slice(SIZE_PREFIX.length), size);
      }
      return sizes;
    })();
    return this.#sizes;
  }
}
