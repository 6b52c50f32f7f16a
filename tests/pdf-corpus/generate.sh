#!/usr/bin/env bash
# Regenerates the PDF corpus from the sources in src/ with the real tools, and
# the ground truth (one text file per page) with poppler's pdftotext.
# Run by `cargo xtask pdf-corpus`. CI does not run it: the outputs are committed.
# Usage: generate.sh [--install]   (--install: apt-get the tools first; needs root)
set -euo pipefail
cd "$(dirname "$0")"
if [[ "${1:-}" == "--install" ]]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    poppler-utils ghostscript chromium fonts-noto-core fonts-noto-cjk fonts-dejavu-core img2pdf \
    groff libreoffice-writer-nogui texlive-latex-base texlive-xetex lmodern
fi
mkdir -p pdf truth
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

chromium_pdf() { # name
  chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$work/chrome-profile" \
    --no-pdf-header-footer --print-to-pdf="pdf/chromium-$1.pdf" "file://$PWD/src/$1.html" 2>/dev/null
}
for name in prose table columns de fr pl ru el zh ja ar he; do chromium_pdf "$name"; done

groff -ms -Tpdf src/groff.ms > pdf/groff.pdf
ps2pdf src/ps2pdf.ps pdf/ps2pdf.pdf
if command -v pdflatex >/dev/null; then
  (cd "$work" && pdflatex -interaction=batchmode "$OLDPWD/src/pdftex.tex" >/dev/null) && cp "$work/pdftex.pdf" pdf/pdftex.pdf
fi
if command -v xelatex >/dev/null; then
  (cd "$work" && xelatex -interaction=batchmode "$OLDPWD/src/xetex.tex" >/dev/null) && cp "$work/xetex.pdf" pdf/xetex.pdf
fi
if command -v soffice >/dev/null; then
  soffice --headless -env:UserInstallation="file://$work/lo-profile" --convert-to pdf --outdir "$work" src/writer.txt >/dev/null
  cp "$work/writer.pdf" pdf/libreoffice.pdf
fi
# An image-only scan: the prose page rendered to a picture and wrapped as a PDF.
pdftoppm -r 100 -gray -png -singlefile pdf/chromium-prose.pdf "$work/scan"
img2pdf "$work/scan.png" -o pdf/scan.pdf

# Ground truth: pdftotext's text of each page, in pdf/NAME.pdf -> truth/NAME/PAGE.txt.
rm -rf truth/*
for pdf in pdf/*.pdf; do
  name=$(basename "$pdf" .pdf)
  mkdir -p "truth/$name"
  pages=$(pdfinfo "$pdf" | awk '/^Pages:/ {print $2}')
  for ((p = 1; p <= pages; p++)); do
    pdftotext -f "$p" -l "$p" -enc UTF-8 "$pdf" "truth/$name/$p.txt"
  done
done
echo "corpus: $(ls pdf | wc -l) PDFs, $(du -sh pdf | cut -f1)"
