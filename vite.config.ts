import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';
import { contentSecurityPolicy } from './shared/contract/csp';

// The page's CSP comes from the one policy the hosts also send as a header (pages loaded from file:// get no headers).
const cspMeta = {
  name: 'stint-csp-meta',
  transformIndexHtml: () => [{ tag: 'meta', attrs: { 'http-equiv': 'Content-Security-Policy', content: contentSecurityPolicy('meta') }, injectTo: 'head-prepend' as const }],
};

// The renderer is built once and served by every shell: Electron loads the files, the web host serves them. The
// approve page (approve.html) is a second entry, served by the grant server at /approve/<request> (server/web); the
// admin console (admin.html, the window's admin views over the server's API) a third, served at /admin/.
export default defineConfig({
  root: 'renderer',
  base: './',
  plugins: [cspMeta, react()],
  build: {
    outDir: '../dist/renderer', emptyOutDir: true, sourcemap: false, target: 'chrome130',
    rollupOptions: { input: { index: 'renderer/index.html', approve: 'renderer/approve.html', admin: 'renderer/admin.html' } },
  },
});
