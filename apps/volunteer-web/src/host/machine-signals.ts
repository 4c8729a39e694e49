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

/** The Battery Status API, which TypeScript's DOM library does not describe. */
interface BatteryLike extends EventTarget {
  readonly level: number;
  readonly charging: boolean;
}

/** Tells `onChange` the battery's level (0 to 1) and whether it charges, now and on every change; nothing where there is no such API. */
export async function watchBattery(onChange: (level: number, charging: boolean) => void): Promise<void> {
  const getBattery = (navigator as { getBattery?: () => Promise<BatteryLike> }).getBattery;
  if (!getBattery) return;
  try {
    const battery = await getBattery.call(navigator);
    const report = () => onChange(battery.level, battery.charging);
    battery.addEventListener('levelchange', report);
    battery.addEventListener('chargingchange', report);
    report();
  } catch (error) {
    console.info('webpvm: the battery level is not available here', error);
  }
}
