/**
 * Lets queued microtasks run, and the code awaiting them: the in-memory store's promises, the
 * inbox's batched deliveries, the router's locate batches and acknowledgements due at once.
 */
export const settle = async () => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};
