// Coalesces bursts of work to one run per animation frame (200 deltas/s
// become ~60 renders/s, each with the latest text). A window that is hidden
// or covered may get no frames at all; a timer then runs the work anyway
// (at most 100 ms late), so the DOM stays current for a background window.

const FALLBACK_MS = 100;

export function perFrame(run: () => void): { schedule(): void; cancel(): void } {
  let frame: number | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;
  const hasRaf = typeof requestAnimationFrame === 'function';

  const clear = () => {
    if (frame !== null && hasRaf) cancelAnimationFrame(frame);
    if (timer !== null) clearTimeout(timer);
    frame = null;
    timer = null;
  };
  const fire = () => {
    clear();
    run();
  };
  return {
    schedule() {
      if (frame !== null || timer !== null) return;
      if (hasRaf) frame = requestAnimationFrame(fire);
      timer = setTimeout(fire, hasRaf ? FALLBACK_MS : 16);
    },
    cancel: clear,
  };
}
