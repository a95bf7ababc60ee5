// The web chat in a real headless browser: Debian's chromium driven by playwright-core (no
// browser download). Two browser users (alice on a desktop-sized window, bob on a phone-sized
// one) and one terminal user (carol, the real moonpost-chat binary on pipes) chat with each
// other: offline mail shown after login, broadcast, private messages with unread counts, a
// reload that resumes with the saved token, a room (history, live messages in order, unread
// count, leaving) and a file sent from one page and downloaded in the other, byte for byte.
// Screenshots go to MOONPOST_SCREENSHOTS.
//
// Run by tests/integration/test_webchat.py, which starts redis-server and the broker and sets:
// MOONPOST_HTTP (host:port of the HTTP listener), MOONPOST_PORT (client port), MOONPOST_CHAT
// (the moonpost-chat binary), MOONPOST_NPM (the node_modules folder), MOONPOST_CHROMIUM,
// MOONPOST_SCREENSHOTS (a directory).
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const fs = require("node:fs");
const crypto = require("node:crypto");
const { spawn } = require("node:child_process");

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(name + " is not set");
  return v;
};
const { chromium } = require(path.join(env("MOONPOST_NPM"), "playwright-core"));
const URL = "http://" + env("MOONPOST_HTTP") + "/";
const WAIT = 15000;
const PASSWORD = "secret-pw1";

/* moonpost-chat on pipes: lines typed to it, its output searched. */
class Terminal {
  constructor(user) {
    this.out = "";
    this.proc = spawn(env("MOONPOST_CHAT"), ["--host", "127.0.0.1", "--port", env("MOONPOST_PORT"),
      "--user", user, "--password", PASSWORD, "--register"], { stdio: ["pipe", "pipe", "pipe"] });
    this.proc.stdout.on("data", (d) => { this.out += d.toString(); });
    this.proc.stderr.on("data", (d) => { this.out += d.toString(); });
  }

  type(line) {
    this.proc.stdin.write(line + "\n");
  }

  /* Resolves once the output (from FROM on) has TEXT; fails after WAIT ms. */
  async waitFor(text, from = 0) {
    const deadline = Date.now() + WAIT;
    while (!this.out.slice(from).includes(text)) {
      if (Date.now() > deadline) throw new Error("moonpost-chat never printed " + JSON.stringify(text) + "; it printed:\n" + this.out);
      if (this.proc.exitCode !== null) throw new Error("moonpost-chat exited: " + this.out);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async quit() {
    this.type("/quit");
    this.proc.stdin.end();
    await new Promise((resolve) => {
      if (this.proc.exitCode !== null) return resolve();
      this.proc.on("exit", resolve);
    });
    return this.proc.exitCode;
  }
}

async function register(page, user) {
  await page.goto(URL);
  await page.fill("#login-user", user);
  await page.fill("#login-password", PASSWORD);
  await page.click("#btn-register");
  await page.waitForSelector("#chat-view", { state: "visible", timeout: WAIT });
}

async function logIn(page, user) {
  await page.fill("#login-user", user);
  await page.fill("#login-password", PASSWORD);
  await page.click("#btn-login");
  await page.waitForSelector("#chat-view", { state: "visible", timeout: WAIT });
}

const item = (page, peer) => page.locator(`#conv-list li[data-peer="${peer}"]`);

async function open(page, peer) {
  if (!(await item(page, peer).isVisible())) await page.click("#btn-back"); // phone: back to the list
  await item(page, peer).click();
}

async function say(page, text) {
  await page.fill("#composer-input", text);
  await page.click("#btn-send");
}

/* The conversation on the screen shows a message with TEXT. */
async function shows(page, text) {
  await page.locator("#messages .msg .text", { hasText: text }).first().waitFor({ timeout: WAIT });
}

const roomItem = (page, room) => page.locator(`#room-list li[data-room="${room}"]`);

/* Joins (or creates) ROOM from the sidebar; its conversation opens. */
async function joinRoom(page, room) {
  if (!(await page.locator("#room-name").isVisible())) await page.click("#btn-back");
  await page.fill("#room-name", room);
  await page.press("#room-name", "Enter");
  await page.locator("#conv-title", { hasText: "#" + room }).waitFor({ timeout: WAIT });
}

/* The texts of the messages of the open conversation, in order, once it has COUNT of them. */
async function texts(page, count) {
  const list = page.locator("#messages .msg:not(.system) .text");
  await list.nth(count - 1).waitFor({ timeout: WAIT });
  return list.allTextContents();
}

async function badge(page, peer) {
  const b = item(page, peer).locator(".badge");
  await b.waitFor({ state: "attached", timeout: WAIT }); // on a phone the list may be hidden
  return Number(await b.textContent());
}

/* In a page: registers and logs in dave over a WebSocket of its own and sends bob a 5-byte
 * file called NAME (the protocol, not the page's UI, so the name is not cleaned first). */
async function sendRaw({ password, name }) {
  const { encode, decode } = MessagePack;
  const ws = new WebSocket("ws://" + location.host + "/ws", "moonpost");
  ws.binaryType = "arraybuffer";
  await new Promise((resolve) => { ws.onopen = resolve; });
  const replies = [];
  ws.onmessage = (e) => replies.push(decode(new Uint8Array(e.data)));
  let id = 0;
  const ask = async (msg) => {
    ws.send(encode({ ...msg, id: ++id }));
    for (;;) {
      const r = replies.find((f) => f.type === "res" && f.id === id);
      if (r) return r;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  await ask({ type: "register", user: "dave", password });
  const login = await ask({ type: "login", user: "dave", password });
  if (login.code !== 200) throw new Error("dave: login " + login.code);
  const offer = await ask({ type: "file.offer", to: "bob", name, size: 5 });
  if (offer.code !== 200) throw new Error("dave: file.offer " + offer.code + " " + offer.error);
  const done = await ask({ type: "file.chunk", fid: offer.fid, offset: 0, data: new TextEncoder().encode("three") });
  if (done.code !== 200) throw new Error("dave: file.chunk " + done.code + " " + done.error);
}

test("two browser users and a terminal user chat", async () => {
  // no sandbox (CI runs as root); nothing of the browser's own calls out (the network is closed)
  const browser = await chromium.launch({ executablePath: env("MOONPOST_CHROMIUM"), headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"] });
  const carol = new Terminal("carol");
  try {
    const alice = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
    const bob = await (await browser.newContext({ viewport: { width: 390, height: 844 },
      isMobile: true, hasTouch: true })).newPage();
    for (const p of [alice, bob]) p.setDefaultTimeout(WAIT);
    const errors = [];
    for (const p of [alice, bob]) p.on("pageerror", (e) => errors.push(e.message));

    // bob has an account but is offline; carol and alice write to him
    await bob.goto(URL);
    await bob.waitForSelector("#login-view", { state: "visible" });
    await bob.screenshot({ path: path.join(env("MOONPOST_SCREENSHOTS"), "webchat-phone-login.png") });
    await register(bob, "bob");
    await bob.click("#btn-logout");
    await bob.waitForSelector("#login-view", { state: "visible", timeout: WAIT });
    await carol.waitFor("logged in as carol");
    let mark = carol.out.length;
    carol.type("/msg bob offline hello from the terminal");
    await carol.waitFor("sent to bob (offline", mark);
    await register(alice, "alice");
    await alice.fill("#new-conv-user", "bob");
    await alice.press("#new-conv-user", "Enter");
    await say(alice, "offline hello from alice");
    await shows(alice, "bob is offline");

    // bob logs in: the offline mail is shown, in one conversation per sender
    await logIn(bob, "bob");
    await bob.locator("#offline-notice", { hasText: "2 messages arrived" }).waitFor({ timeout: WAIT });
    assert.equal(await badge(bob, "carol"), 1);
    assert.equal(await badge(bob, "alice"), 1);
    await open(bob, "carol");
    await shows(bob, "offline hello from the terminal");
    assert.equal(await bob.locator("#messages .msg.offline").count(), 1);

    // broadcast from a browser reaches the other browser and the terminal
    await open(alice, "*");
    mark = carol.out.length;
    await say(alice, "hello everyone");
    await carol.waitFor("hello everyone", mark);
    assert.equal(await badge(bob, "*"), 1);
    // ... and from the terminal both browsers
    carol.type("/all hi from the terminal");
    await shows(alice, "hi from the terminal");
    await open(bob, "*");
    await shows(bob, "hello everyone");
    await shows(bob, "hi from the terminal");

    // private: bob -> alice (unread count on alice's side), carol -> alice, alice -> carol
    await open(bob, "alice");
    await shows(bob, "offline hello from alice");
    await say(bob, "hi alice, bob here");
    assert.equal(await badge(alice, "bob"), 1);
    carol.type("/msg alice private from the terminal");
    assert.equal(await badge(alice, "carol"), 1);
    await open(alice, "bob");
    await shows(alice, "hi alice, bob here");
    assert.equal(await item(alice, "bob").locator(".badge").count(), 0);
    await open(alice, "carol");
    await shows(alice, "private from the terminal");
    mark = carol.out.length;
    await say(alice, "back to you, carol");
    await carol.waitFor("back to you, carol", mark);

    // who is online: everyone sees the others
    for (const [page, others] of [[alice, ["bob", "carol"]], [bob, ["alice", "carol"]]]) {
      if (page === bob) await bob.click("#btn-back");
      for (const u of others) await item(page, u).locator(".dot.on").waitFor({ timeout: 20000 });
    }

    // a reload resumes with the token and keeps the conversations
    await alice.reload();
    await alice.waitForSelector("#chat-view", { state: "visible", timeout: WAIT });
    assert.equal(await alice.textContent("#me-name"), "alice");
    await open(alice, "bob");
    await shows(alice, "hi alice, bob here");
    await open(bob, "alice");
    await say(bob, "after your reload");
    await shows(alice, "after your reload");

    // a room: alice creates it and writes; bob joins and sees the history, then both write
    await joinRoom(alice, "lobby");
    await say(alice, "room: first from alice");
    await shows(alice, "room: first from alice");
    await joinRoom(bob, "lobby");
    await shows(bob, "room: first from alice"); // room.history on open
    await say(bob, "room: bob answers");
    await shows(alice, "room: bob answers"); // a live room.msg
    await say(alice, "room: alice again");
    await say(bob, "room: bob again");
    const inRoom = ["room: first from alice", "room: bob answers", "room: alice again", "room: bob again"];
    assert.deepEqual(await texts(alice, 4), inRoom);
    assert.deepEqual(await texts(bob, 4), inRoom);
    // bob elsewhere: the room counts what he has not read; opening it reads it
    await open(bob, "alice");
    await say(alice, "room: while bob is away");
    await roomItem(bob, "lobby").locator(".badge", { hasText: "1" }).waitFor({ state: "attached", timeout: WAIT });
    await alice.screenshot({ path: path.join(env("MOONPOST_SCREENSHOTS"), "webchat-room.png") });
    await bob.click("#btn-back");
    await roomItem(bob, "lobby").click();
    assert.deepEqual(await texts(bob, 5), [...inRoom, "room: while bob is away"]);
    assert.equal(await roomItem(bob, "lobby").locator(".badge").count(), 0);

    // a file: alice picks 100 KB of random bytes for bob (more than one chunk), bob downloads it
    const original = crypto.randomBytes(100 * 1024);
    await open(alice, "bob");
    await alice.setInputFiles("#file-input", { name: "random data.bin", mimeType: "application/octet-stream", buffer: original });
    await alice.locator("#messages .msg.file.mine .file-status", { hasText: "sent" }).waitFor({ timeout: WAIT });
    await open(bob, "alice");
    const fileMsg = bob.locator("#messages .msg.file", { hasText: "random data.bin" });
    await fileMsg.waitFor({ timeout: WAIT });
    const [download] = await Promise.all([bob.waitForEvent("download", { timeout: WAIT }),
      fileMsg.locator("button.download").click()]);
    assert.equal(download.suggestedFilename(), "random data.bin");
    const got = fs.readFileSync(await download.path());
    assert.equal(got.length, original.length);
    assert.ok(got.equals(original), "the downloaded bytes equal the sent ones");
    await fileMsg.locator(".file-status", { hasText: "saved" }).waitFor({ timeout: WAIT });
    await bob.screenshot({ path: path.join(env("MOONPOST_SCREENSHOTS"), "webchat-file.png") });

    // a file whose name would escape a folder or hold control characters is saved under a clean
    // one: dave (a client speaking the protocol over the page's WebSocket) sends bob such a file
    const dave = await (await browser.newContext()).newPage();
    await dave.goto(URL);
    await dave.evaluate(sendRaw, { password: PASSWORD, name: "..\\evil\u0001name.txt" });
    await open(bob, "dave");
    const evil = bob.locator("#messages .msg.file", { hasText: "evil" });
    const [saved] = await Promise.all([bob.waitForEvent("download", { timeout: WAIT }),
      evil.locator("button.download").click()]);
    assert.equal(saved.suggestedFilename(), "_evil_name.txt");
    assert.equal(fs.readFileSync(await saved.path()).toString(), "three");

    // bob leaves the room: it is gone from his list, alice's stays
    await bob.click("#btn-back");
    await roomItem(bob, "lobby").click();
    await bob.click("#btn-leave");
    await roomItem(bob, "lobby").waitFor({ state: "detached", timeout: WAIT });
    assert.equal(await roomItem(alice, "lobby").count(), 1);

    // every message shown is acked (the broker's mailbox is checked by test_webchat.py)
    for (const page of [alice, bob])
      await page.waitForFunction(() => document.body.dataset.lastMid &&
        document.body.dataset.acked === document.body.dataset.lastMid, null, { timeout: WAIT });

    const dir = env("MOONPOST_SCREENSHOTS");
    await alice.screenshot({ path: path.join(dir, "webchat-desktop.png") });
    await bob.screenshot({ path: path.join(dir, "webchat-phone.png") });
    await bob.click("#btn-back");
    await bob.screenshot({ path: path.join(dir, "webchat-phone-list.png") });
    assert.deepEqual(errors, [], "errors in the page's script");
  } finally {
    const code = await carol.quit();
    await browser.close();
    assert.equal(code, 0, "moonpost-chat exit status");
  }
});
