/** A lane control's payload (vm-protocol lane.ts) as pages send it on their channel: JSON text. */
export const laneControlBytes = (control: unknown) => new TextEncoder().encode(JSON.stringify(control));

export const readLaneControl = (payload: Uint8Array): unknown => JSON.parse(new TextDecoder().decode(payload));
