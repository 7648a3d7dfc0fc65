/**
 * Opens a page in headless Debian Chromium for browser tests: what the page logged as errors, the
 * rendered size of every <svg>, and a full-page screenshot. Drives Chromium with playwright-core when
 * it is installed, and otherwise speaks the DevTools protocol to it directly over
 * `--remote-debugging-pipe` (NUL-separated JSON on fds 3 and 4), so the test runs either way.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';

/** The binary itself rather than Debian's /usr/bin/chromium wrapper script, when it is there. */
export function findChromium(): string | undefined {
  return ['/usr/lib/chromium/chromium', '/usr/bin/chromium'].find((p) => existsSync(p));
}

/** Flags for a quiet, offline, throwaway browser (the user-data dir is added per launch). */
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface PageReport {
  /** Console errors, uncaught exceptions and browser log errors (failed loads), as text. */
  errors: string[];
  svgs: Array<{ width: number; height: number }>;
  /** The page's <title>. */
  title: string;
  driver: 'playwright-core' | 'cdp-pipe';
}

// Evaluated in the page; a string because the test's TypeScript has no DOM types.
const MEASURE = `JSON.stringify({
  title: document.title,
  svgs: [...document.querySelectorAll('svg')].map((e) => { const r = e.getBoundingClientRect(); return { width: r.width, height: r.height }; }),
})`;

const VIEWPORT = { width: 1280, height: 900 };

interface PlaywrightLike {
  chromium: {
    launch(opts: { executablePath: string; args: string[]; headless: boolean }): Promise<{
      newPage(opts: { viewport: typeof VIEWPORT }): Promise<{
        on(event: 'console', fn: (m: { type(): string; text(): string }) => void): void;
        on(event: 'pageerror', fn: (e: Error) => void): void;
        goto(url: string, opts: { waitUntil: 'load' }): Promise<unknown>;
        evaluate(expression: string): Promise<unknown>;
        screenshot(opts: { path: string; fullPage: boolean }): Promise<unknown>;
      }>;
      close(): Promise<void>;
    }>;
  };
}

async function loadPlaywright(): Promise<PlaywrightLike | undefined> {
  const name = 'playwright-core'; // a variable, so the typecheck does not need the package installed
  try {
    return (await import(name)) as PlaywrightLike;
  } catch {
    return undefined;
  }
}

async function withPlaywright(pw: PlaywrightLike, chromium: string, url: string, screenshot: string): Promise<PageReport> {
  // playwright-core makes its own user-data dir and adds --headless and --no-sandbox itself.
  const browser = await pw.chromium.launch({ executablePath: chromium, headless: true, args: CHROMIUM_FLAGS.filter((f) => f !== '--headless' && f !== '--no-sandbox') });
  try {
    const page = await browser.newPage({ viewport: VIEWPORT });
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(url, { waitUntil: 'load' });
    const measured = JSON.parse(String(await page.evaluate(MEASURE))) as Pick<PageReport, 'title' | 'svgs'>;
    await page.screenshot({ path: screenshot, fullPage: true });
    return { ...measured, errors, driver: 'playwright-core' };
  } finally {
    await browser.close();
  }
}

interface CdpMessage {
  id?: number;
  method?: string;
  sessionId?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
}

async function withCdpPipe(chromium: string, url: string, screenshot: string, timeoutMs: number): Promise<PageReport> {
  const profile = await mkdtemp(join(tmpdir(), 'paramtrail-chromium-'));
  const child = spawn(chromium, [...CHROMIUM_FLAGS, `--user-data-dir=${profile}`, '--remote-debugging-pipe', 'about:blank'], {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const toBrowser = child.stdio[3] as Writable;
  const fromBrowser = child.stdio[4] as Readable;

  const pending = new Map<number, { resolve: (m: CdpMessage) => void; reject: (e: Error) => void }>();
  const listeners: Array<(m: CdpMessage) => void> = [];
  let buffered = '';
  let nextId = 1;
  let failed: Error | undefined;
  // Settled by the page's load event, or by the browser dying or timing out first.
  let loaded!: () => void;
  let loadFailed!: (err: Error) => void;
  const load = new Promise<void>((resolve, reject) => ((loaded = resolve), (loadFailed = reject)));
  load.catch(() => undefined); // awaited below; a failure before then must not go unhandled
  const fail = (err: Error) => {
    failed ??= err;
    for (const p of pending.values()) p.reject(err);
    pending.clear();
    loadFailed(err);
  };
  fromBrowser.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    let end;
    while ((end = buffered.indexOf('\0')) >= 0) {
      const msg = JSON.parse(buffered.slice(0, end)) as CdpMessage;
      buffered = buffered.slice(end + 1);
      if (msg.id !== undefined && pending.has(msg.id)) {
        const p = pending.get(msg.id)!;
        pending.delete(msg.id);
        if (msg.error) p.reject(new Error(`DevTools: ${msg.error.message}`));
        else p.resolve(msg);
      } else {
        for (const l of listeners) l(msg);
      }
    }
  });
  child.on('exit', (code, signal) => fail(new Error(`chromium exited (code ${code}, signal ${signal}) before the page was measured; stderr:\n${stderr}`)));
  child.on('error', fail);
  const timer = setTimeout(() => fail(new Error(`chromium: no answer within ${timeoutMs} ms; stderr:\n${stderr}`)), timeoutMs);

  const send = (method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<Record<string, unknown>> => {
    if (failed) return Promise.reject(failed);
    const id = nextId++;
    return new Promise<CdpMessage>((resolve, reject) => {
      pending.set(id, { resolve, reject });
      toBrowser.write(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }) + '\0');
    }).then((m) => m.result ?? {});
  };

  try {
    const { targetId } = (await send('Target.createTarget', { url: 'about:blank' })) as { targetId: string };
    const { sessionId } = (await send('Target.attachToTarget', { targetId, flatten: true })) as { sessionId: string };
    const errors: string[] = [];
    listeners.push((m) => {
      if (m.sessionId !== sessionId) return;
      const p = m.params ?? {};
      if (m.method === 'Runtime.consoleAPICalled' && p.type === 'error') {
        errors.push((p.args as Array<{ value?: unknown; description?: string }>).map((a) => String(a.value ?? a.description)).join(' '));
      } else if (m.method === 'Runtime.exceptionThrown') {
        const d = p.exceptionDetails as { text: string; exception?: { description?: string } };
        errors.push(d.exception?.description ?? d.text);
      } else if (m.method === 'Log.entryAdded') {
        const e = p.entry as { level: string; text: string; url?: string };
        if (e.level === 'error') errors.push(`${e.text}${e.url ? ` (${e.url})` : ''}`);
      } else if (m.method === 'Page.loadEventFired') {
        loaded();
      }
    });
    for (const domain of ['Page', 'Runtime', 'Log']) await send(`${domain}.enable`, {}, sessionId);
    await send('Emulation.setDeviceMetricsOverride', { ...VIEWPORT, deviceScaleFactor: 1, mobile: false }, sessionId);
    const nav = (await send('Page.navigate', { url }, sessionId)) as { errorText?: string };
    if (nav.errorText) throw new Error(`chromium could not open ${url}: ${nav.errorText}`);
    await load;
    const evaluated = (await send('Runtime.evaluate', { expression: MEASURE, returnByValue: true }, sessionId)) as { result: { value: string } };
    const measured = JSON.parse(evaluated.result.value) as Pick<PageReport, 'title' | 'svgs'>;
    const { data } = (await send('Page.captureScreenshot', { format: 'png', captureBeyondViewport: true }, sessionId)) as { data: string };
    await writeFile(screenshot, Buffer.from(data, 'base64'));
    return { ...measured, errors, driver: 'cdp-pipe' };
  } finally {
    clearTimeout(timer);
    child.removeAllListeners('exit');
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      await send('Browser.close').catch(() => child.kill('SIGKILL'));
      await exited;
    }
    await rm(profile, { recursive: true, force: true });
  }
}

/** Opens `url` in headless Chromium, measures it and writes a full-page PNG to `screenshot`. */
export async function openInChromium(chromium: string, url: string, screenshot: string, opts: { timeoutMs?: number } = {}): Promise<PageReport> {
  const pw = await loadPlaywright();
  return pw ? withPlaywright(pw, chromium, url, screenshot) : withCdpPipe(chromium, url, screenshot, opts.timeoutMs ?? 60_000);
}
