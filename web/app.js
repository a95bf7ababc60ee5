/* moonpost web chat: speaks the moonpost protocol over a WebSocket (/ws, subprotocol
 * "moonpost", one binary message per MessagePack frame body). Logs in or registers, resumes
 * with its token after a reload (sessionStorage), lists who is online, chats with everyone
 * (broadcast) and privately (one conversation per peer, unread counts), shows the offline mail
 * pushed after login and acks every message it has shown. */
"use strict";
(() => {
  const { encode, decode } = MessagePack;
  const EVERYONE = "*"; // the key of the broadcast conversation (no user name has a '*')
  const KEEP = 200; // messages kept per conversation
  const REFRESH_MS = 15000; // how often the online list is asked for (also keeps the session alive)
  const $ = (id) => document.getElementById(id);

  const state = {
    ws: null,
    user: null,
    nextId: 1,
    pending: new Map(), // request id -> resolve
    online: new Set(),
    convs: new Map(), // key -> { messages: [], unread: 0 }
    active: EVERYONE,
    lastMid: 0, // the highest mid seen: a repeat is dropped, acks go up to it
    offlineCount: 0,
    loggedIn: false,
    leaving: false, // logging out or replaced: no reconnect
    timers: { ack: 0, refresh: 0, save: 0, reconnect: 0 },
  };

  // ---- the connection ----

  function wsUrl() {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
  }

  function connect() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(wsUrl(), "moonpost");
      ws.binaryType = "arraybuffer";
      ws.onopen = () => resolve(ws);
      ws.onerror = () => reject(new Error("cannot reach the server"));
      ws.onmessage = (e) => onFrame(decode(new Uint8Array(e.data)));
      ws.onclose = (e) => onClose(ws, e);
      state.ws = ws;
    });
  }

  async function ensureConnected() {
    const ws = state.ws;
    if (ws && ws.readyState === WebSocket.OPEN) return ws;
    return connect();
  }

  /* Sends MSG with a fresh id; resolves with the broker's `res` (code 0 if the connection
   * went away first). */
  function request(msg) {
    const id = state.nextId++;
    return new Promise((resolve) => {
      const ws = state.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) {
        resolve({ code: 0, error: "not connected" });
        return;
      }
      state.pending.set(id, resolve);
      ws.send(encode({ ...msg, id }));
    });
  }

  function onClose(ws, event) {
    if (ws !== state.ws) return;
    state.ws = null;
    for (const resolve of state.pending.values()) resolve({ code: 0, error: "connection lost" });
    state.pending.clear();
    if (!state.loggedIn || state.leaving) return;
    setStatus("connection lost: reconnecting…");
    clearTimeout(state.timers.reconnect);
    state.timers.reconnect = setTimeout(resumeSaved, 1500);
  }

  function onFrame(f) {
    switch (f.type) {
      case "res": {
        const resolve = state.pending.get(f.id);
        if (resolve) {
          state.pending.delete(f.id);
          resolve(f);
        } else if (f.code !== 200) {
          setStatus("error: " + f.error);
        }
        break;
      }
      case "msg": onMsg(f); break;
      case "broadcast": addMessage(EVERYONE, { from: f.from, body: f.body, ts: f.ts, system: !!f.system }); break;
      case "presence": f.online ? state.online.add(f.user) : state.online.delete(f.user); renderList(); break;
      case "bye": onBye(f); break;
      default: break; // types of later versions
    }
  }

  function onBye(f) {
    if (f.code === 409) {
      state.leaving = true;
      forgetSession();
      showLogin("you logged in somewhere else");
    } else if (f.code === 408 || f.code === 503) {
      setStatus("the server closed the connection (" + f.error + ")");
    } else {
      setStatus("closed by the server: " + f.error);
    }
  }

  // ---- messages ----

  function bodyText(body) {
    if (typeof body === "string") return body;
    if (body instanceof Uint8Array) {
      try {
        return new TextDecoder("utf-8", { fatal: true }).decode(body);
      } catch (e) {
        return "[" + body.length + " bytes of binary data]";
      }
    }
    return String(body);
  }

  function conv(key) {
    let c = state.convs.get(key);
    if (!c) {
      c = { messages: [], unread: 0 };
      state.convs.set(key, c);
    }
    return c;
  }

  function onMsg(f) {
    if (f.mid <= state.lastMid) { // a repeat (at-least-once delivery): shown already, ack again
      scheduleAck();
      return;
    }
    state.lastMid = f.mid;
    const peer = f.from === state.user ? f.to : f.from;
    addMessage(peer, { from: f.from, body: f.body, ts: f.ts, offline: !!f.offline });
    if (f.offline) {
      state.offlineCount++;
      const notice = $("offline-notice");
      notice.textContent = state.offlineCount === 1 ? "1 message arrived while you were away"
        : state.offlineCount + " messages arrived while you were away";
      notice.hidden = false;
    }
    scheduleAck();
  }

  /* Acks everything shown so far, once a burst of messages is over. The page's body carries
   * the highest mid shown and the highest acked, for whoever watches it (the browser test). */
  function scheduleAck() {
    document.body.dataset.lastMid = state.lastMid;
    clearTimeout(state.timers.ack);
    state.timers.ack = setTimeout(async () => {
      const upto = state.lastMid;
      const r = await request({ type: "ack", upto });
      if (r.code === 200) document.body.dataset.acked = upto;
    }, 200);
  }

  function addMessage(key, m) {
    const c = conv(key);
    c.messages.push({ from: m.from, text: bodyText(m.body), ts: m.ts || Date.now(),
      mine: m.from === state.user, offline: !!m.offline, system: !!m.system, note: !!m.note });
    if (c.messages.length > KEEP) c.messages.splice(0, c.messages.length - KEEP);
    const seen = key === state.active && isVisible();
    if (!seen && m.from !== state.user && !m.note) c.unread++;
    saveSoon();
    renderList();
    if (key === state.active) renderMessages();
  }

  /* True when the open conversation is on the screen: on a phone-sized window only one of the
   * list and the conversation is. */
  function isVisible() {
    const narrow = window.matchMedia("(max-width: 700px)").matches;
    return !document.hidden && (!narrow || $("chat-view").classList.contains("open"));
  }

  function systemLine(key, text) {
    addMessage(key, { from: "", body: text, note: true }); // said by this page, not a user
  }

  async function sendComposer(event) {
    event.preventDefault();
    const input = $("composer-input");
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    const key = state.active;
    const r = key === EVERYONE ? await request({ type: "broadcast", body: text })
      : await request({ type: "send", to: key, body: text });
    if (r.code === 200) {
      addMessage(key, { from: state.user, body: text, ts: Date.now() });
      if (key !== EVERYONE && !r.online) systemLine(key, key + " is offline and gets it at the next login");
    } else {
      input.value = text;
      systemLine(key, "not sent: " + explain("send", r));
    }
  }

  // ---- logging in ----

  const texts = {
    login: { 401: "wrong user name or password", 429: "too many failed logins: wait a few minutes" },
    register: {
      400: "user names are 1-32 letters, digits, '_', '.' or '-'; passwords need 6 or more characters",
      409: "that user name is taken",
      429: "too many new accounts from here: try later",
    },
    send: { 404: "no such user", 413: "the message is too long", 429: "slow down",
      507: "their mailbox is full" },
  };

  function explain(action, r) {
    if (r.code === 0) return "no connection to the server";
    if (r.code === 503) return "the server is busy or unavailable, try again";
    return (texts[action] && texts[action][r.code]) || r.error || "error " + r.code;
  }

  function saved() {
    try {
      return JSON.parse(sessionStorage.getItem("moonpost.session") || "null");
    } catch (e) {
      return null;
    }
  }

  function forgetSession() {
    sessionStorage.removeItem("moonpost.session");
  }

  async function submitLogin(event, register) {
    if (event) event.preventDefault();
    const form = $("login-form");
    if (!form.reportValidity()) return;
    const user = $("login-user").value.trim();
    const password = $("login-password").value;
    setLoginError("");
    setBusy(true);
    try {
      await ensureConnected();
      if (register) {
        const r = await request({ type: "register", user, password });
        if (r.code !== 200) return setLoginError(explain("register", r));
      }
      const r = await request({ type: "login", user, password });
      if (r.code !== 200) return setLoginError(explain("login", r));
      loggedIn(user, r);
    } catch (e) {
      setLoginError(e.message);
    } finally {
      setBusy(false);
    }
  }

  /* After a reload (or a lost connection): the saved token logs in again without a password. */
  async function resumeSaved() {
    const s = saved();
    if (!s) return showLogin("");
    try {
      await ensureConnected();
    } catch (e) {
      if (state.loggedIn) {
        state.timers.reconnect = setTimeout(resumeSaved, 3000);
        return;
      }
      return showLogin("cannot reach the server");
    }
    const r = await request({ type: "resume", user: s.user, token: s.token });
    if (r.code === 200) return loggedIn(s.user, r);
    if (r.code === 0 || r.code === 503) {
      state.timers.reconnect = setTimeout(resumeSaved, 3000);
      return;
    }
    forgetSession();
    showLogin("please log in again");
  }

  function loggedIn(user, r) {
    if (state.user !== user) restoreConversations(user);
    state.user = user;
    state.loggedIn = true;
    state.leaving = false;
    sessionStorage.setItem("moonpost.session", JSON.stringify({ user, token: r.token }));
    state.online = new Set(r.users || []);
    $("login-view").hidden = true;
    $("chat-view").hidden = false;
    $("me-name").textContent = user;
    $("me-avatar").textContent = user.slice(0, 1);
    setStatus("online");
    clearInterval(state.timers.refresh);
    state.timers.refresh = setInterval(refreshUsers, REFRESH_MS);
    renderList();
    renderMessages();
  }

  async function refreshUsers() {
    const r = await request({ type: "users" });
    if (r.code !== 200) return;
    state.online = new Set(r.users);
    renderList();
  }

  async function logout() {
    state.leaving = true;
    clearInterval(state.timers.refresh);
    await request({ type: "logout" });
    forgetSession();
    sessionStorage.removeItem("moonpost.convs." + state.user);
    if (state.ws) state.ws.close(1000);
    resetChat();
    showLogin("");
  }

  function resetChat() {
    state.user = null;
    state.loggedIn = false;
    state.convs = new Map();
    state.online = new Set();
    state.active = EVERYONE;
    state.lastMid = 0;
    state.offlineCount = 0;
    $("offline-notice").hidden = true;
  }

  // ---- keeping the conversations across a reload ----

  function saveSoon() {
    clearTimeout(state.timers.save);
    state.timers.save = setTimeout(() => {
      if (!state.user) return;
      const data = { lastMid: state.lastMid, active: state.active, convs: [...state.convs] };
      try {
        sessionStorage.setItem("moonpost.convs." + state.user, JSON.stringify(data));
      } catch (e) { /* storage full: the conversations are only in memory */ }
    }, 300);
  }

  function restoreConversations(user) {
    try {
      const data = JSON.parse(sessionStorage.getItem("moonpost.convs." + user) || "null");
      if (!data) return;
      state.convs = new Map(data.convs);
      state.lastMid = data.lastMid || 0;
      state.active = data.active || EVERYONE;
    } catch (e) { /* a damaged copy: start empty */ }
  }

  // ---- drawing ----

  function setStatus(text) {
    $("status").textContent = text;
  }

  function setLoginError(text) {
    $("login-error").textContent = text;
  }

  function setBusy(busy) {
    $("btn-login").disabled = busy;
    $("btn-register").disabled = busy;
  }

  function showLogin(error) {
    $("chat-view").hidden = true;
    $("login-view").hidden = false;
    setLoginError(error);
    $("login-user").focus();
  }

  function time(ts) {
    return new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function peers() {
    const keys = new Set([...state.convs.keys()].filter((k) => k !== EVERYONE));
    for (const u of state.online) if (u !== state.user) keys.add(u);
    const last = (k) => {
      const m = state.convs.get(k)?.messages;
      return m && m.length ? m[m.length - 1].ts : 0;
    };
    return [...keys].sort((a, b) => last(b) - last(a) || a.localeCompare(b));
  }

  function renderList() {
    const list = $("conv-list");
    list.replaceChildren();
    let unread = 0;
    for (const key of [EVERYONE, ...peers()]) {
      const c = state.convs.get(key);
      const li = document.createElement("li");
      li.dataset.peer = key;
      if (key === state.active) li.classList.add("active");
      const dot = document.createElement("span");
      dot.className = "dot" + (key === EVERYONE ? " all" : state.online.has(key) ? " on" : "");
      const who = document.createElement("span");
      who.className = "who";
      const name = document.createElement("span");
      name.className = "peer";
      name.textContent = key === EVERYONE ? "Everyone" : key;
      const lastLine = document.createElement("span");
      lastLine.className = "last";
      const msgs = c ? c.messages : [];
      lastLine.textContent = msgs.length ? msgs[msgs.length - 1].text
        : key === EVERYONE ? state.online.size + " online" : state.online.has(key) ? "online" : "offline";
      who.append(name, lastLine);
      li.append(dot, who);
      if (c && c.unread > 0) {
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = c.unread;
        li.append(badge);
        unread += c.unread;
      }
      li.addEventListener("click", () => openConversation(key));
      list.append(li);
    }
    document.title = (unread ? "(" + unread + ") " : "") + "moonpost chat";
  }

  function renderMessages() {
    const key = state.active;
    $("conv-title").textContent = key === EVERYONE ? "Everyone" : key;
    $("conv-sub").textContent = key === EVERYONE ? state.online.size + " online"
      : state.online.has(key) ? "online" : "offline";
    const list = $("messages");
    list.replaceChildren();
    for (const m of conv(key).messages) {
      const li = document.createElement("li");
      li.className = "msg" + (m.mine ? " mine" : "") + (m.offline ? " offline" : "") +
        (m.note ? " system" : "");
      if (!m.note) {
        const meta = document.createElement("span");
        meta.className = "meta";
        // an operator's broadcast (admin.broadcast) comes from "" with system: true
        meta.textContent = (m.mine ? "you" : m.system ? "server" : m.from) + " · " + time(m.ts);
        li.append(meta);
      }
      const text = document.createElement("span");
      text.className = "text";
      text.textContent = m.text;
      li.append(text);
      list.append(li);
    }
    list.scrollTop = list.scrollHeight;
  }

  function openConversation(key) {
    state.active = key;
    conv(key).unread = 0;
    $("chat-view").classList.add("open");
    renderList();
    renderMessages();
    saveSoon();
    $("composer-input").focus();
  }

  // ---- start ----

  $("login-form").addEventListener("submit", (e) => submitLogin(e, false));
  $("btn-register").addEventListener("click", (e) => submitLogin(e, true));
  $("btn-logout").addEventListener("click", logout);
  $("composer").addEventListener("submit", sendComposer);
  $("new-conv").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = $("new-conv-user");
    const user = input.value.trim();
    if (!user || user === state.user || !input.reportValidity()) return;
    input.value = "";
    conv(user);
    openConversation(user);
  });
  $("btn-back").addEventListener("click", () => $("chat-view").classList.remove("open"));
  document.addEventListener("visibilitychange", () => {
    if (!isVisible() || !state.loggedIn) return;
    conv(state.active).unread = 0;
    renderList();
  });
  resumeSaved();
})();
