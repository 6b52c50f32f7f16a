/// <reference types="vitest/config" />
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig, type Plugin } from 'vite';

// pdf.js fetches its standard-font and CMap data by URL at run time; ship them
// beside the app (served from 'self') instead of from any remote origin.
function pdfjsAssets(): Plugin {
  const root = join(import.meta.dirname, 'node_modules/pdfjs-dist');
  return {
    name: 'quire-pdfjs-assets',
    apply: 'build',
    generateBundle() {
      for (const dir of ['standard_fonts', 'cmaps']) {
        for (const name of readdirSync(join(root, dir))) {
          this.emitFile({ type: 'asset', fileName: `pdfjs/${dir}/${name}`, source: readFileSync(join(root, dir, name)) });
        }
      }
    },
  };
}

// Tauri serves the built files from its own protocol; keep paths relative and the output
// free of inline scripts and styles so the window's strict CSP holds (Svelte's CSS is
// extracted to a file).
export default defineConfig({
  base: './',
  plugins: [svelte({ emitCss: true }), pdfjsAssets()],
  build: {
    outDir: process.env.VITE_QUIRE_FAKE === '1' ? 'dist-fake' : 'dist',
    emptyOutDir: true,
    target: 'es2022',
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 1500,
  },
  clearScreen: false,
  // Component tests mount Svelte components in jsdom: use Svelte's browser build there.
  resolve: process.env.VITEST ? { conditions: ['browser'] } : undefined,
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.ts'],
  },
});
