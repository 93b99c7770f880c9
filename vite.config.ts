import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The renderer is built once and served by every shell: Electron loads the files, the web host serves them.
export default defineConfig({
  root: 'renderer',
  base: './',
  plugins: [react()],
  build: { outDir: '../dist/renderer', emptyOutDir: true, sourcemap: false, target: 'chrome130' },
});
