import { defineConfig } from 'vite';

// Tauri serves the built files from its own protocol; keep paths relative and the output
// free of inline scripts so the window's strict CSP holds.
export default defineConfig({
  base: './',
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', modulePreload: { polyfill: false } },
  clearScreen: false,
});
