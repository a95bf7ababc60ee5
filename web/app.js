/* moonpost web chat: speaks the moonpost protocol over a WebSocket (/ws, subprotocol
 * "moonpost", one binary message per MessagePack frame body). Logs in or registers, resumes
 * with its token after a reload (sessionStorage), lists who is online, chats with everyone
 * (broadcast) and privately (one conversation per peer, unread counts), shows the offline mail
 * pushed after login and acks every message it has shown. Rooms: lists the rooms one is a
 * member of (unread counts), joins or creates one by name, shows its history and live messages,
 * marks them read, leaves. Files: sends one to a peer in chunks and downloads a received one. */
"use strict";
(() => {
  const { encode, decode } = MessagePack;
  const EVERYONE = "*"; // the key of the broadcast conversation (no user name has a '*')
  const ROOM = "#"; // a room's conversation key is "#" + its name (no user name has a '#')
  const ROOM_HISTORY = 50; // the messages fetched when a room is opened
  const KEEP = 200; // messages kept per conversation
  const REFRESH_MS = 15000; // how often the online list and the rooms are asked for (also keeps the session alive)
  const $ = (id) => document.getElementById(id);

  const state = {
    ws: null,
    user: null,
    nextId: 1,
    pending: new Map(), // request id -> resolve
    online: new Set(),
    convs: new Map(), // key -> { messages: [], unread: 0 }
    rooms: new Map(), // room name -> { title, members, seq, read }, from room.list
    active: EVERYONE,
    lastMid: 0, // the highest mid seen: a repeat is dropped, acks go up to it
    offlineCount: 0,
    loggedIn: false,
    leaving: false, // logging out or replaced: no reconnect
    timers: { ack: 0, refresh: 0, save: 0, reconnect: 0, read: 0 },
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
      case "room.msg": onRoomMsg(f); break;
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
    addMessage(peer, { from: f.from, body: f.body, ts: f.ts, offline: !!f.offline, file: fileOf(f) });
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
    const shown = { from: m.from, text: bodyText(m.body), ts: m.ts || Date.now(),
      mine: m.from === state.user, offline: !!m.offline, system: !!m.system, note: !!m.note };
    if (m.file) shown.file = m.file;
    if (m.seq) shown.seq = m.seq;
    // a room's messages stay in seq order: a push may overtake the reply to one's own send
    let at = c.messages.length;
    if (m.seq) while (at > 0 && (c.messages[at - 1].seq || 0) > m.seq) at--;
    c.messages.splice(at, 0, shown);
    if (c.messages.length > KEEP) c.messages.splice(0, c.messages.length - KEEP);
    const seen = key === state.active && isVisible();
    if (!seen && m.from !== state.user && !m.note) c.unread++;
    saveSoon();
    renderList();
    if (key === state.active) renderMessages();
    return shown;
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
    if (isRoom(key)) return sendRoom(key, text);
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
    room: { 400: "room names are 1-64 letters, digits, '_', '.' or '-'",
      403: "that room is private: ask a member to invite you", 404: "no such room",
      413: "the message is too long", 507: "that room is full" },
    file: { 404: "no such user, or the file has expired", 413: "the file is too large",
      507: "too many of your files are still in flight: try later" },
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
    state.timers.refresh = setInterval(() => { refreshUsers(); refreshRooms(); }, REFRESH_MS);
    renderList();
    renderMessages();
    refreshRooms();
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
    state.rooms = new Map();
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
    const keys = new Set([...state.convs.keys()].filter((k) => k !== EVERYONE && !isRoom(k)));
    for (const u of state.online) if (u !== state.user) keys.add(u);
    const last = (k) => {
      const m = state.convs.get(k)?.messages;
      return m && m.length ? m[m.length - 1].ts : 0;
    };
    return [...keys].sort((a, b) => last(b) - last(a) || a.localeCompare(b));
  }

  function renderList() {
    const people = [EVERYONE, ...peers()].map(listItem);
    const rooms = [...state.rooms.keys()].sort().map((name) => listItem(ROOM + name));
    $("conv-list").replaceChildren(...people);
    $("room-list").replaceChildren(...rooms);
    let unread = 0;
    for (const [key, c] of state.convs) if (key === EVERYONE || !isRoom(key) || state.rooms.has(roomName(key))) unread += c.unread;
    document.title = (unread ? "(" + unread + ") " : "") + "moonpost chat";
  }

  /* The sidebar's line for the conversation KEY: a person, everyone or a room. */
  function listItem(key) {
    const c = state.convs.get(key);
    const li = document.createElement("li");
    if (isRoom(key)) li.dataset.room = roomName(key);
    else li.dataset.peer = key;
    if (key === state.active) li.classList.add("active");
    const dot = document.createElement("span");
    dot.className = "dot" + (isRoom(key) ? " room" : key === EVERYONE ? " all" : state.online.has(key) ? " on" : "");
    const who = document.createElement("span");
    who.className = "who";
    const name = document.createElement("span");
    name.className = "peer";
    name.textContent = key === EVERYONE ? "Everyone" : key;
    const lastLine = document.createElement("span");
    lastLine.className = "last";
    const msgs = c ? c.messages : [];
    lastLine.textContent = msgs.length ? msgs[msgs.length - 1].text : subtitle(key);
    who.append(name, lastLine);
    li.append(dot, who);
    if (c && c.unread > 0) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = c.unread;
      li.append(badge);
    }
    li.addEventListener("click", () => openConversation(key));
    return li;
  }

  function subtitle(key) {
    if (key === EVERYONE) return state.online.size + " online";
    if (isRoom(key)) {
      const r = state.rooms.get(roomName(key));
      if (!r) return "";
      const members = r.members + (r.members === 1 ? " member" : " members");
      return r.title ? r.title + " · " + members : members;
    }
    return state.online.has(key) ? "online" : "offline";
  }

  function renderMessages() {
    const key = state.active;
    $("conv-title").textContent = key === EVERYONE ? "Everyone" : key;
    $("conv-sub").textContent = subtitle(key);
    $("btn-leave").hidden = !isRoom(key);
    $("btn-file").hidden = key === EVERYONE || isRoom(key);
    const list = $("messages");
    list.replaceChildren();
    for (const m of conv(key).messages) {
      const li = document.createElement("li");
      li.className = "msg" + (m.mine ? " mine" : "") + (m.offline ? " offline" : "") +
        (m.note ? " system" : "") + (m.file ? " file" : "");
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
      if (m.file) li.append(fileInfo(m));
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
    if (isRoom(key)) loadRoom(roomName(key));
  }

  // ---- rooms ----

  function isRoom(key) {
    return key.startsWith(ROOM);
  }

  function roomName(key) {
    return key.slice(ROOM.length);
  }

  /* The rooms one is a member of, with their unread counts (after login and after a join). */
  async function refreshRooms() {
    const r = await request({ type: "room.list" });
    if (r.code !== 200) return;
    state.rooms = new Map(r.rooms.map((room) => [room.room, room]));
    for (const room of r.rooms) {
      const key = ROOM + room.room;
      conv(key).unread = key === state.active && isVisible() ? 0 : room.unread;
    }
    renderList();
    if (isRoom(state.active)) renderMessages();
  }

  /* Joins the room NAME, or creates it when there is none; then opens it. */
  async function joinRoom(name) {
    let r = await request({ type: "room.join", room: name });
    if (r.code === 404) {
      r = await request({ type: "room.create", room: name });
      if (r.code === 409) r = await request({ type: "room.join", room: name }); // created meanwhile
    }
    if (r.code !== 200) {
      systemLine(state.active, "cannot join " + name + ": " + explain("room", r));
      return;
    }
    await refreshRooms();
    openConversation(ROOM + name);
  }

  /* Shows the newest messages of the room (its history replaces what the page kept). */
  async function loadRoom(name) {
    const key = ROOM + name;
    const r = await request({ type: "room.history", room: name, limit: ROOM_HISTORY });
    if (r.code !== 200) {
      if (r.code === 403 || r.code === 404) state.rooms.delete(name); // no longer a member
      systemLine(key, "cannot show the room: " + explain("room", r));
      return;
    }
    const c = conv(key);
    const pushed = c.messages.filter((m) => m.seq > lastSeq(r.messages)); // arrived meanwhile
    c.messages = [];
    for (const m of [...r.messages, ...pushed]) addMessage(key, { ...m, file: null });
    c.unread = 0;
    markRead(name);
    refreshRooms(); // the member counts
  }

  function lastSeq(messages) {
    return messages.length ? messages[messages.length - 1].seq : 0;
  }

  function onRoomMsg(f) {
    const key = ROOM + f.room;
    const c = conv(key);
    if (c.messages.some((m) => m.seq === f.seq)) return; // shown already (history raced the push)
    addMessage(key, { from: f.from, body: f.body, ts: f.ts, seq: f.seq });
    if (key === state.active && isVisible()) markRead(f.room);
    if (!state.rooms.has(f.room)) refreshRooms(); // joined elsewhere (another tab)
  }

  /* Moves the room's read cursor to the newest message shown, once a burst is over. */
  function markRead(name) {
    clearTimeout(state.timers.read);
    state.timers.read = setTimeout(() => {
      const seq = lastSeq(conv(ROOM + name).messages.filter((m) => m.seq));
      if (seq) request({ type: "room.read", room: name, seq });
    }, 200);
  }

  async function sendRoom(key, text) {
    const name = roomName(key);
    const r = await request({ type: "room.send", room: name, body: text });
    if (r.code === 200) {
      addMessage(key, { from: state.user, body: text, ts: Date.now(), seq: r.seq });
      markRead(name);
    } else {
      $("composer-input").value = text;
      systemLine(key, "not sent: " + explain("room", r));
    }
  }

  async function leaveRoom() {
    const key = state.active;
    if (!isRoom(key)) return;
    const r = await request({ type: "room.leave", room: roomName(key) });
    if (r.code !== 200 && r.code !== 404) {
      systemLine(key, "cannot leave: " + explain("room", r));
      return;
    }
    state.rooms.delete(roomName(key));
    state.convs.delete(key);
    openConversation(EVERYONE);
  }

  // ---- files ----

  /* The file a msg carries ({fid, name, size}), or null. */
  function fileOf(f) {
    const file = f.file;
    if (!file || typeof file.fid !== "string") return null;
    return { fid: file.fid, name: String(file.name), size: Number(file.size) };
  }

  /* A name safe to save under: no path separators, control characters or leading dots. */
  function safeName(name) {
    // eslint-disable-next-line no-control-regex
    let clean = String(name).replace(/[\/\\\u0000-\u001f\u007f]/g, "_").replace(/^[.\s]+/, "").trim();
    while (new TextEncoder().encode(clean).length > 255) clean = clean.slice(0, -1); // the broker's limit
    return clean || "download";
  }

  function sizeText(n) {
    if (n < 1024) return n + " B";
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KB";
    return (n / 1024 / 1024).toFixed(1) + " MB";
  }

  /* Below a file message: its size, then the progress of a transfer, or a download button. */
  function fileInfo(m) {
    const box = document.createElement("span");
    box.className = "file-info";
    const size = document.createElement("span");
    size.textContent = sizeText(m.file.size);
    box.append(size);
    if (m.progress !== undefined && m.progress < 1) {
      const bar = document.createElement("progress");
      bar.max = 1;
      bar.value = m.progress;
      box.append(bar);
    }
    if (m.status) {
      const status = document.createElement("span");
      status.className = "file-status";
      status.textContent = m.status;
      box.append(status);
    }
    if (!m.mine && m.progress === undefined) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "download";
      button.textContent = "Download";
      button.addEventListener("click", () => downloadFile(m));
      box.append(button);
    }
    return box;
  }

  /* Shows a transfer's progress (0..1) and status on message M. */
  function progress(key, m, done, status) {
    m.progress = done;
    m.status = status;
    saveSoon();
    if (key === state.active) renderMessages();
  }

  /* Sends FILE to the peer KEY: file.offer, then file.chunk in order (from where the broker
   * says it is when a chunk is answered 409). */
  async function sendFile(key, file) {
    const name = safeName(file.name);
    const m = addMessage(key, { from: state.user, body: name, ts: Date.now(),
      file: { fid: "", name, size: file.size } });
    if (file.size === 0) return progress(key, m, 1, "not sent: the file is empty");
    progress(key, m, 0, "sending…");
    const offer = await request({ type: "file.offer", to: key, name, size: file.size });
    if (offer.code !== 200) return progress(key, m, 1, "not sent: " + explain("file", offer));
    m.file.fid = offer.fid;
    let offset = 0;
    while (offset < file.size) {
      const piece = file.slice(offset, Math.min(file.size, offset + offer.chunk_max));
      const data = new Uint8Array(await piece.arrayBuffer());
      const r = await request({ type: "file.chunk", fid: offer.fid, offset, data });
      if ((r.code === 200 || r.code === 409) && Number.isInteger(r.received)) offset = r.received;
      else return progress(key, m, 1, "not sent: " + explain("file", r));
      progress(key, m, offset / file.size, "sending… " + Math.floor(100 * offset / file.size) + "%");
    }
    progress(key, m, 1, "sent");
  }

  /* Fetches the file of message M with file.get, chunk by chunk, and saves it (a Blob). */
  async function downloadFile(m) {
    const key = state.active;
    const { fid, size } = m.file;
    progress(key, m, 0, "downloading…");
    const status = await request({ type: "file.status", fid });
    if (status.code !== 200) return progress(key, m, undefined, "cannot download: " + explain("file", status));
    const parts = [];
    let offset = 0;
    while (offset < size) {
      const r = await request({ type: "file.get", fid, offset, length: status.chunk_max });
      if (r.code !== 200 || !r.data || r.data.length === 0) {
        return progress(key, m, undefined, "cannot download: " + explain("file", r));
      }
      parts.push(r.data);
      offset += r.data.length;
      progress(key, m, offset / size, "downloading… " + Math.floor(100 * offset / size) + "%");
    }
    const url = URL.createObjectURL(new Blob(parts, { type: "application/octet-stream" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = safeName(m.file.name);
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    progress(key, m, undefined, "saved");
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
  $("room-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = $("room-name");
    const name = input.value.trim();
    if (!name || !input.reportValidity()) return;
    input.value = "";
    joinRoom(name);
  });
  $("btn-leave").addEventListener("click", leaveRoom);
  $("file-input").addEventListener("change", (e) => {
    const file = e.target.files[0];
    e.target.value = ""; // the same file may be picked again
    if (file && state.active !== EVERYONE && !isRoom(state.active)) sendFile(state.active, file);
  });
  $("btn-back").addEventListener("click", () => $("chat-view").classList.remove("open"));
  document.addEventListener("visibilitychange", () => {
    if (!isVisible() || !state.loggedIn) return;
    conv(state.active).unread = 0;
    if (isRoom(state.active)) markRead(roomName(state.active));
    renderList();
  });
  resumeSaved();
})();
