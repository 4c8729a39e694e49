/** Size limits on every input; the coordinator and the host both enforce them. */
export const LIMITS = {
  /** One WebSocket frame between a host and the coordinator. */
  frameBytes: 16 * 1024 * 1024,
  /** One REST request body (a job: program + inputs, or a part of a job's inputs). */
  requestBytes: 64 * 1024 * 1024,
  programBytes: 4 * 1024 * 1024,
  /** Inputs one request may carry: `POST /api/jobs`, or one part `POST /api/jobs/:id/inputs` appends. */
  inputsPerRequest: 100_000,
  /** Root tasks a bag job may hold in all, its inputs streamed in over many requests. */
  tasksPerBag: 100_000_000,
  /** One message between tasks (its data on the wire); a 64 MiB array fits. */
  messageBytes: 96 * 1024 * 1024,
  /** Tasks one `spawn` may start, and tasks a job's tasks may spawn in all. */
  spawnPerCall: 4096,
  tasksPerJob: 200_000,
  groupChars: 128,
  /** One task's serialized input, result or checkpoint. */
  valueBytes: 8 * 1024 * 1024,
  itemsPerBatch: 1024,
  /** One checkpoint state, value-encoded; a 64 MiB Float64Array fits. */
  stateBytes: 128 * 1024 * 1024,
  /** A migrating task's image (state + unread messages), and the pieces it travels in. */
  imageBytes: 192 * 1024 * 1024,
  imagePartBytes: 1024 * 1024,
  /**
   * A checkpoint image the coordinator keeps (host.ts `checkpoint-image`); a larger one is kept
   * by another volunteer's tab (`keep-image`), in IndexedDB.
   */
  checkpointImageBytes: 16 * 1024 * 1024,
  /** Other volunteers' checkpoint images one host keeps, all together (`keep-image`). */
  keptImageBytes: 512 * 1024 * 1024,
  slotsPerHost: 64,
  /**
   * Spawned tasks one host runs at once, each in a worker of its own beyond its slots: all of a
   * PVM program's tasks must run side by side, but a tab cannot start workers without end. The
   * coordinator places no more on a host; those beyond what the grid holds wait for room.
   */
  spawnedPerHost: 32,
  /**
   * Tasks a host may report it holds when it says hello again: what it runs and what it was
   * handed ahead of time (the coordinator sends a fast host up to 512 beyond its slots).
   * A task it holds beyond these is run again elsewhere.
   */
  heldPerHost: 1024,
  nameChars: 200,
  logLineChars: 4096,
  idChars: 64,
  /** A coordinator's public URL. */
  urlChars: 512,
  /** Coordinators of one cluster a page is told about. */
  clusterCoordinators: 64,
} as const;
