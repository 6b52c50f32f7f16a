// Coalesces bursts of work to one run per animation frame (200 deltas/s
// become ~60 renders/s, each with the latest text).

export function perFrame(run: () => void): { schedule(): void; cancel(): void } {
  let handle: number | null = null;
  const raf: (cb: () => void) => number =
    typeof requestAnimationFrame === 'function' ? requestAnimationFrame : (cb) => setTimeout(cb, 16) as unknown as number;
  const caf: (h: number) => void = typeof cancelAnimationFrame === 'function' ? cancelAnimationFrame : (h) => clearTimeout(h);
  return {
    schedule() {
      if (handle !== null) return;
      handle = raf(() => {
        handle = null;
        run();
      });
    },
    cancel() {
      if (handle !== null) caf(handle);
      handle = null;
    },
  };
}
