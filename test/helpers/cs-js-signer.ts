/**
 * channelstream's browser signer (channelstream/static/channelstream/signer.js,
 * ChannelStreamSigner.signRequest), rule for rule, for tests: the value is
 * always "channelstream"; the timestamp and the HMAC go through btoa, then
 * its hashStrip, which replaces only the FIRST "=", "+" and "/" (JavaScript's
 * String.replace with a string pattern). So a 4-byte timestamp keeps one "="
 * of its padding, and a second "+" or "/" stays as it is.
 */
import { createHash, createHmac } from 'node:crypto';

function intToBytesBase64(x: number): string {
  const bytes: number[] = [];
  while (x > 0) {
    bytes.push(x & 255);
    x = x >> 8;
  }
  return Buffer.from(bytes.reverse()).toString('base64');
}

function hashStrip(input: string): string {
  return input.replace('=', '').replace('+', '-').replace('/', '_');
}

export function jsSign(secret: string, nowS = Math.floor(Date.now() / 1000)): string {
  const derived = createHash('sha1').update(`itsdangerous.Signersigner${secret}`, 'utf8').digest();
  const value = `channelstream.${hashStrip(intToBytesBase64(nowS))}`;
  const hmac = createHmac('sha1', derived).update(value, 'utf8').digest('base64');
  return `${value}.${hashStrip(hmac)}`;
}
