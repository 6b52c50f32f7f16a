import { describe, expect, it, vi } from 'vitest';
import { perFrame } from './frame';

describe('per-frame coalescing', () => {
  it('runs once per animation frame however often it is scheduled (200 deltas/s)', () => {
    const frames: FrameRequestCallback[] = [];
    vi.stubGlobal('requestAnimationFrame', (cb: FrameRequestCallback) => frames.push(cb));
    vi.stubGlobal('cancelAnimationFrame', () => {});
    const run = vi.fn();
    const render = perFrame(run);
    // One second of 200 deltas at 60 frames: ~3-4 deltas land in each frame.
    let delta = 0;
    for (let frame = 0; frame < 60; frame++) {
      while (delta < ((frame + 1) * 200) / 60) {
        render.schedule();
        delta++;
      }
      frames.splice(0).forEach((cb) => cb(frame * 16));
    }
    expect(delta).toBe(200);
    expect(run).toHaveBeenCalledTimes(60);
    vi.unstubAllGlobals();
  });

  it('cancel drops a pending run', () => {
    const frames: FrameRequestCallback[] = [];
    vi.stubGlobal('requestAnimationFrame', (cb: FrameRequestCallback) => frames.push(cb));
    vi.stubGlobal('cancelAnimationFrame', () => frames.splice(0));
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const run = vi.fn();
    const render = perFrame(run);
    render.schedule();
    render.cancel();
    frames.forEach((cb) => cb(0));
    vi.advanceTimersByTime(500);
    expect(run).not.toHaveBeenCalled();
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });

  it('still runs when the window gets no frames (hidden or covered)', () => {
    vi.stubGlobal('requestAnimationFrame', () => 1);
    vi.stubGlobal('cancelAnimationFrame', () => {});
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const run = vi.fn();
    const render = perFrame(run);
    render.schedule();
    render.schedule();
    vi.advanceTimersByTime(99);
    expect(run).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(run).toHaveBeenCalledTimes(1);
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });

  it('with a minimum interval, waits that long after the previous run, then for a frame', () => {
    const frames: FrameRequestCallback[] = [];
    vi.stubGlobal('requestAnimationFrame', (cb: FrameRequestCallback) => frames.push(cb));
    vi.stubGlobal('cancelAnimationFrame', () => {});
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const run = vi.fn();
    const render = perFrame(run, 80);
    render.schedule();
    frames.splice(0).forEach((cb) => cb(0));
    expect(run).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(10);
    render.schedule();
    render.schedule();
    vi.advanceTimersByTime(69);
    expect(frames).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(frames).toHaveLength(1);
    frames.splice(0).forEach((cb) => cb(80));
    expect(run).toHaveBeenCalledTimes(2);
    // One second of 200 deltas: ~12 runs, not 60.
    for (let ms = 0; ms < 1000; ms += 5) {
      render.schedule();
      vi.advanceTimersByTime(5);
      if (ms % 15 === 0) frames.splice(0).forEach((cb) => cb(ms));
    }
    expect(run.mock.calls.length).toBeGreaterThanOrEqual(2 + 10);
    expect(run.mock.calls.length).toBeLessThanOrEqual(2 + 13);
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });
});
