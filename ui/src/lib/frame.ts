// Coalesces bursts of work to one run per animation frame (200 deltas/s
// become ~60 renders/s, each with the latest text). A window that is hidden
// or covered may get no frames at all; a timer then runs the work anyway
// (at most 100 ms late), so the DOM stays current for a background window.
// With `minIntervalMs`, a run also waits until that long after the previous
// one (then for the next frame): fewer, larger updates.

const FALLBACK_MS = 100;

export function perFrame(run: () => void, minIntervalMs = 0): { schedule(): void; cancel(): void } {
  let frame: number | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let delay: ReturnType<typeof setTimeout> | null = null;
  let last = -Infinity;
  const hasRaf = typeof requestAnimationFrame === 'function';

  const clear = () => {
    if (frame !== null && hasRaf) cancelAnimationFrame(frame);
    if (timer !== null) clearTimeout(timer);
    if (delay !== null) clearTimeout(delay);
    frame = null;
    timer = null;
    delay = null;
  };
  const fire = () => {
    clear();
    last = Date.now();
    run();
  };
  const request = () => {
    delay = null;
    if (hasRaf) frame = requestAnimationFrame(fire);
    timer = setTimeout(fire, hasRaf ? FALLBACK_MS : 16);
  };
  return {
    schedule() {
      if (frame !== null || timer !== null || delay !== null) return;
      const wait = last + minIntervalMs - Date.now();
      if (wait > 0) delay = setTimeout(request, wait);
      else request();
    },
    cancel: clear,
  };
}
