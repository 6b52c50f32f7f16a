// pdf.js, loaded on first use (a separate chunk), configured for the strict
// CSP: the worker is a bundled file served from 'self', no eval, and the
// standard font data sits beside the app (copied by vite.config.ts).
// The legacy build: WebKitGTK (Tauri on Linux) lacks async iteration of
// ReadableStream, which the modern build's text layer needs.

import './stream-iter';
import * as pdfjs from 'pdfjs-dist/legacy/build/pdf.mjs';
import workerUrl from 'pdfjs-dist/legacy/build/pdf.worker.min.mjs?url';
import 'pdfjs-dist/legacy/web/pdf_viewer.css';

pdfjs.GlobalWorkerOptions.workerSrc = workerUrl;
// pdf_viewer.mjs reads the library from this global.
(globalThis as unknown as { pdfjsLib: typeof pdfjs }).pdfjsLib = pdfjs;

const viewer = await import('pdfjs-dist/legacy/web/pdf_viewer.mjs');

export const { EventBus, PDFViewer, PDFLinkService, PDFFindController } = viewer;

const assets = import.meta.env.DEV ? '/node_modules/pdfjs-dist/' : './pdfjs/';

export function openPdf(data: Uint8Array) {
  return pdfjs.getDocument({
    data,
    isEvalSupported: false,
    enableXfa: false,
    // Metric-compatible fonts shipped with pdf.js for PDFs that do not embed theirs,
    // so the text layer (and the highlighted passage) lines up with the glyphs.
    useSystemFonts: false,
    standardFontDataUrl: `${assets}standard_fonts/`,
    cMapUrl: `${assets}cmaps/`,
    cMapPacked: true,
  }).promise;
}
