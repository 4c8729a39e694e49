import { type CoordinatorMessageOf, ImageAssembly, type ImagePartHeader, LIMITS, imageParts } from '@webpvm/vm-protocol';
import type { OutboxFrame } from './coordinator-outbox.ts';
import type { KeyValueStore } from './kv-store.ts';

export interface KeptImagesOptions {
  store: KeyValueStore;
  /** To the coordinator, in order with the page's other frames (coordinator-outbox.ts). */
  send(frame: OutboxFrame): void;
  /** This host's id, once welcomed: tabs of one browser profile share IndexedDB, and each keeps its own. */
  hostId(): string | null;
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
 * coordinator when asked (`return-image`), which checks it against the hash it noted.
 */
export class KeptImages {
  #options: KeptImagesOptions;
  #parts = new ImageAssembly(LIMITS.imageBytes);
  /** tid → bytes of what is stored, for this host's id (`#load`). */
  #sizes = new Map<string, number>();
  /** The host whose sizes are read, or being read. */
  #loaded: { hostId: string; done: Promise<void> } | null = null;

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
    const prefix = await this.#prefix();
    if (!bytes || bytes.byteLength !== m.imageBytes || !prefix) return console.warn(`webpvm: the image of ${m.tid} to keep did not come whole`);
    let total = 0;
    for (const [tid, size] of this.#sizes) if (tid !== m.tid) total += size;
    if (total + bytes.byteLength > LIMITS.keptImageBytes) return console.warn(`webpvm: no room to keep the image of ${m.tid}`);
    await this.#options.store.write(
      [
        [PREFIX + prefix + m.tid, { image: m.image, bytes } satisfies StoredImage],
        [SIZE_PREFIX + prefix + m.tid, bytes.byteLength],
      ],
      [],
    );
    this.#sizes.set(m.tid, bytes.byteLength);
    this.#options.send({ type: 'image-kept', tid: m.tid, image: m.image });
  }

  /** The image kept for `tid` goes back through the coordinator, as the parts it asked for. */
  async give(m: CoordinatorMessageOf<'return-image'>): Promise<void> {
    const prefix = await this.#prefix();
    const stored = prefix ? await this.#options.store.get<StoredImage>(PREFIX + prefix + m.tid) : undefined;
    if (stored?.image !== m.image) return console.warn(`webpvm: asked for an image of ${m.tid} not kept here`);
    for (const part of imageParts(m.tid, m.attempt, stored.bytes, m.image)) this.#options.send(part);
    this.#options.send({ type: 'image-returned', tid: m.tid, attempt: m.attempt, image: m.image });
  }

  async forget(tids: readonly string[]): Promise<void> {
    const prefix = await this.#prefix();
    if (!prefix) return;
    for (const tid of tids) {
      this.#sizes.delete(tid);
      this.#parts.forget(tid);
    }
    await this.#options.store.delMany(tids.flatMap((tid) => [PREFIX + prefix + tid, SIZE_PREFIX + prefix + tid]));
  }

  /** After a welcome: the coordinator hears what is kept here, and says what to forget. */
  async welcome(): Promise<void> {
    await this.#prefix();
    const tids = [...this.#sizes.keys()];
    for (let i = 0; i < tids.length; i += LIMITS.itemsPerBatch) this.#options.send({ type: 'images-kept', tids: tids.slice(i, i + LIMITS.itemsPerBatch) });
  }

  /** This host's part of the keys (`<hostId>:`), with the sizes of what it keeps read once its id is known. */
  async #prefix(): Promise<string | null> {
    const hostId = this.#options.hostId();
    if (!hostId) return null;
    if (this.#loaded?.hostId !== hostId) this.#loaded = { hostId, done: this.#load(`${SIZE_PREFIX}${hostId}:`) };
    await this.#loaded.done;
    return `${hostId}:`;
  }

  async #load(sizes: string): Promise<void> {
    this.#sizes.clear();
    for (const key of await this.#options.store.keys()) {
      const size = key.startsWith(sizes) ? await this.#options.store.get<number>(key) : undefined;
      if (size !== undefined) this.#sizes.set(key.slice(sizes.length), size);
    }
  }
}
