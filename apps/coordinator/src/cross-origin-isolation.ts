/**
 * The host page shares SharedArrayBuffers with its task workers, which a browser allows only to a
 * `crossOriginIsolated` page: one in a browsing context group of its own (COOP) that loads nothing
 * another origin has not agreed to (COEP). The dashboard gets the same headers, so that both pages
 * of the app behave alike.
 */
export const ISOLATED_PAGE_HEADERS = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
} as const;

/**
 * For scripts, styles and program modules. A dedicated worker of an isolated page starts only if its
 * script carries COEP itself; CORP keeps other origins' isolated pages from loading our files.
 */
export const ISOLATED_RESOURCE_HEADERS = {
  'cross-origin-resource-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
} as const;
