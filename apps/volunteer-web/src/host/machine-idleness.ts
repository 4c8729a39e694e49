/** The Idle Detection API, which TypeScript's DOM library does not describe yet. */
interface IdleDetectorLike extends EventTarget {
  readonly userState: 'active' | 'idle' | null;
  start(options: { threshold: number }): Promise<void>;
}
type IdleDetectorClass = new () => IdleDetectorLike;

/** The shortest threshold the API accepts. */
const THRESHOLD_MS = 60_000;

/**
 * Tells `onChange` whether someone uses the machine, anywhere on it, when the person already
 * granted Idle Detection to this origin; asking for the permission needs a click, so a page that
 * lacks it simply goes without.
 */
export async function watchMachineIdleness(onChange: (active: boolean) => void): Promise<void> {
  const Detector = (globalThis as { IdleDetector?: IdleDetectorClass }).IdleDetector;
  if (!Detector) return;
  try {
    const status = await navigator.permissions.query({ name: 'idle-detection' as PermissionName });
    if (status.state !== 'granted') return;
    const detector = new Detector();
    detector.addEventListener('change', () => onChange(detector.userState === 'active'));
    await detector.start({ threshold: THRESHOLD_MS });
  } catch (error) {
    console.info('webpvm: idle detection is not available here', error);
  }
}
