#!/usr/bin/env node
// Draws Stint's app icon and the five tray glyphs (idle, active, pending, attention, offline) as PNGs with nothing
// but zlib, so the icons are reproducible here without image tools. Run once after changing a shape; output is
// committed under build/resources/. macOS template images are black-on-transparent (`*Template.png`).
import { deflateSync } from 'node:zlib';
import { writeFileSync, mkdirSync } from 'node:fs';

function crc32(buf) {
  let c, crc = 0xffffffff;
  for (let n = 0; n < buf.length; n++) {
    c = (crc ^ buf[n]) & 0xff;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    crc = (crc >>> 8) ^ c;
  }
  return (crc ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type), data]);
  const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
function png(size, pixel) {
  const raw = Buffer.alloc((size * 4 + 1) * size);
  for (let y = 0; y < size; y++) {
    raw[y * (size * 4 + 1)] = 0;
    for (let x = 0; x < size; x++) {
      const [r, g, b, a] = pixel((x + 0.5) / size, (y + 0.5) / size);
      raw.set([r, g, b, a], y * (size * 4 + 1) + 1 + x * 4);
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0); ihdr.writeUInt32BE(size, 4); ihdr[8] = 8; ihdr[9] = 6;
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}
const dist = (x, y, cx, cy) => Math.hypot(x - cx, y - cy);
// The glyph: a ring (the time box) with a key-like notch; filled when access is active.
const shapes = {
  idle: (x, y) => Math.abs(dist(x, y, 0.5, 0.5) - 0.36) < 0.07,
  active: (x, y) => dist(x, y, 0.5, 0.5) < 0.43,
  pending: (x, y) => dist(x, y, 0.5, 0.5) < 0.43 && !(dist(x, y, 0.72, 0.72) < 0.2),
  attention: (x, y) => Math.abs(dist(x, y, 0.5, 0.5) - 0.36) < 0.07 || dist(x, y, 0.78, 0.22) < 0.16,
  offline: (x, y) => Math.abs(dist(x, y, 0.5, 0.5) - 0.36) < 0.07 || (Math.abs(x - y) < 0.06 && x > 0.12 && x < 0.88),
};
mkdirSync('build/resources/tray', { recursive: true });
for (const [name, inside] of Object.entries(shapes)) {
  for (const [suffix, size] of [['', 16], ['@2x', 32]]) {
    writeFileSync(`build/resources/tray/${name}Template${suffix}.png`, png(size, (x, y) => (inside(x, y) ? [0, 0, 0, 255] : [0, 0, 0, 0])));
    writeFileSync(`build/resources/tray/${name}${suffix}.png`, png(size, (x, y) => (inside(x, y) ? [47, 91, 234, 255] : [0, 0, 0, 0])));
  }
}
writeFileSync('build/resources/icon.png', png(512, (x, y) => {
  const d = dist(x, y, 0.5, 0.5);
  if (d > 0.46) return [0, 0, 0, 0];
  if (Math.abs(d - 0.3) < 0.06 || (x > 0.47 && x < 0.53 && y > 0.2 && y < 0.5) || (y > 0.47 && y < 0.53 && x > 0.5 && x < 0.68)) return [255, 255, 255, 255];
  return [47, 91, 234, 255];
}));
console.log('icons written to build/resources/');
