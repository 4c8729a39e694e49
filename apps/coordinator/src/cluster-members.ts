import { CoordinatorUrl } from '@webpvm/vm-protocol';

/**
 * The cluster's coordinators that a page can be served from, and so fail over to when its own
 * dies (docs/cluster.md, "Failover"): the public URLs of those that share this one's database,
 * as the job leases' turns learn them. A coordinator named otherwise (no `WEBPVM_PUBLIC_URL`, a
 * free port) is not one a page can reach by name, and is left out.
 */
export class ClusterMembers {
  #urls: string[] = [];
  #connectSources = '';
  readonly #listeners: ((urls: readonly string[]) => void)[] = [];

  get urls(): readonly string[] {
    return this.#urls;
  }

  /**
   * What a page's `connect-src` allows beyond its own origin: each member's origin as http(s) and
   * as ws(s), so that a page can try a member's socket before it moves there.
   */
  get connectSources(): string {
    return this.#connectSources;
  }

  update(coordinators: readonly string[]): void {
    const urls = coordinators.filter((id) => CoordinatorUrl.safeParse(id).success);
    if (urls.join(' ') === this.#urls.join(' ')) return;
    this.#urls = urls;
    // Asked for on every response the pages' policy goes with: made once per change.
    this.#connectSources = urls.flatMap((url) => [url, url.replace(/^http/, 'ws')]).join(' ');
    for (const listener of this.#listeners) listener(urls);
  }

  onChange(listener: (urls: readonly string[]) => void): void {
    this.#listeners.push(listener);
  }
}
