import { execFileSync } from 'node:child_process';
import vitestLikeSetup from '../harness/global-setup';

// Build the renderer once so every spec serves the same bundle the app ships, and own a harness temp root
// (swept afterwards) exactly like the Vitest run does.
export default function globalSetup(): () => void {
  execFileSync('npx', ['vite', 'build', '--logLevel', 'warn'], { stdio: 'inherit' });
  return vitestLikeSetup();
}
