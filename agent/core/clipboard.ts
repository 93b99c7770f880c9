// The clipboard is an effect the shell provides (Electron's clipboard, a terminal host's OSC 52, or nothing).
export interface Clipboard {
  readText(): Promise<string> | string;
  writeText(text: string): Promise<void> | void;
  clear(): Promise<void> | void;
}

/** For hosts with no clipboard (the CLI prints the URI instead). */
export const noClipboard: Clipboard = { readText: () => '', writeText: () => {}, clear: () => {} };

/** In-memory clipboard: for tests, and as the web host's stand-in. */
export class MemoryClipboard implements Clipboard {
  text = '';
  readText(): string { return this.text; }
  writeText(text: string): void { this.text = text; }
  clear(): void { this.text = ''; }
}
