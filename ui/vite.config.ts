import { gzipSync } from "node:zlib";
import react from "@vitejs/plugin-react";
import type { Plugin } from "vite";
import { defineConfig } from "vitest/config";

// Precompressed copies of every text asset: plx serves `x.js.gz` to browsers that accept gzip.
function precompress(): Plugin {
  return {
    name: "plx-precompress",
    apply: "build",
    generateBundle(_options, bundle) {
      for (const [name, item] of Object.entries(bundle)) {
        if (!/\.(js|css|svg|json|html)$/.test(name)) continue;
        const source = item.type === "chunk" ? item.code : item.source;
        this.emitFile({
          type: "asset",
          fileName: `${name}.gz`,
          source: gzipSync(typeof source === "string" ? Buffer.from(source) : source, { level: 9 }),
        });
      }
    },
  };
}

export default defineConfig({
  plugins: [react(), precompress()],
  build: {
    outDir: "../app/ui_dist",
    emptyOutDir: true,
    // No inline modulepreload polyfill script: the page's CSP allows no inline script.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 1200,
  },
  server: { proxy: { "/api": "http://127.0.0.1:8000", "/ws": { target: "ws://127.0.0.1:8000", ws: true } } },
  test: { environment: "jsdom", include: ["src/**/*.test.ts", "src/**/*.test.tsx"] },
});
