// RoomsClient: a small, reusable client for the rooms protocol on /ws.
// Plain ES module, no dependencies, no build step. It keeps one websocket open,
// reconnects by itself with capped exponential backoff and full jitter, rejoins
// its rooms after every reconnect, and pings the server so that a dead
// connection is noticed. It remembers where each room's history was when it
// last heard from it and rejoins from there, so that the messages it missed
// come back, in order, once each; and it sends its messages with ids, keeping
// each until the server acknowledges it and sending it again after a
// reconnect (the server never delivers one twice).
//
//   import { RoomsClient } from "./client.js";
//   const client = new RoomsClient();            // ws(s)://<page's folder>/ws
//   client.on("message", (m) => console.log(m.room, m.from, m.text));
//   client.connect();
//   client.join("lobby");
//   client.send("lobby", "hello");
//   client.on("cursor.move", ({ from, data }) => draw(from, data));  // an app event
//   client.publish("lobby", "cursor.move", { x: 10, y: 20 });

/** Room names the server accepts: 1-64 ASCII letters, digits, "_", "-", "." or ":". */
export const ROOM_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;

/** App-defined event names the server accepts: a letter, then up to 63 letters, digits, "_", ".", ":" or "-". */
export const EVENT_PATTERN = /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/;

/** The longest message text the server accepts, in characters (code points). */
export const MAX_TEXT_LENGTH = 4096;

/** Timing defaults in milliseconds; each can be overridden through the constructor. */
export const DEFAULTS = Object.freeze({
  reconnectDelay: 500, // backoff base: the first retry waits up to this long
  maxReconnectDelay: 10_000, // backoff cap
  pingInterval: 20_000, // send a ping this often while open
  pingTimeout: 10_000, // no frame this long after a ping: the connection is dead
  resendInterval: 3_000, // messages not acknowledged this long are sent again
});

/** Every event a RoomsClient emits. */
export const EVENTS = Object.freeze([
  "state", // { state, attempt, delay, retryAt }
  "welcome", // { id }
  "joined", // { room, members }, once per join (a repeated "joined" only updates "rooms")
  "resumed", // { room, recovered, missed }: after a rejoin from where the client was
  "left", // { room }
  "presence", // { room, members, id, event: "join" | "leave" }
  "message", // { room, from, text?, event?, data?, ts, own, epoch, offset }, once each, in order
  "ack", // { room, id, offset }: a message sent has its place in the room's history
  "error", // { code, detail, room?, id? } from the server, or a client-side code
  "rooms", // [{ room, members, joined }] whenever the room list changes
]);

/** A message id: 16 random letters and digits (ids the server accepts). */
export function newId() {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (byte) => byte.toString(36).padStart(2, "0")).join("").slice(0, 16);
}

/** True if `room` is a name the server accepts. */
export function isValidRoom(room) {
  return typeof room === "string" && ROOM_PATTERN.test(room);
}

/** True if `text` is a message text the server accepts. */
export function isValidText(text) {
  if (typeof text !== "string" || text.length === 0) return false;
  // Two UTF-16 units per character at most: only long strings need counting.
  return text.length <= MAX_TEXT_LENGTH || Array.from(text).length <= MAX_TEXT_LENGTH;
}

/**
 * The websocket URL for `path`, resolved against the page's own address:
 * ws: under http:, wss: under https:; a relative path keeps any proxy prefix.
 * A `token` (the server's AUTH_TOKEN) goes into the query: browsers cannot
 * set headers on a websocket handshake.
 */
export function socketUrl(path = "ws", base = globalThis.location?.href, token = null) {
  const url = new URL(path, base);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.hash = "";
  if (token) url.searchParams.set("token", token);
  return url.href;
}

/**
 * Connection states, in the order a client usually goes through them:
 * "idle" (before connect()), "connecting", "open", "reconnecting" (waiting
 * `delay` ms before the next attempt), and "closed" (after close()).
 */
export class RoomsClient {
  #url;
  #options;
  #listeners = new Map();
  #socket = null;
  #state = "idle";
  #attempt = 0; // failed attempts since the last welcome
  #retryTimer = null;
  #pingTimer = null;
  #deadTimer = null;
  #id = null;
  #rooms = new Map(); // room -> member count, or null until the server confirms
  #pendingJoins = []; // rooms joined on this socket and not yet answered, in order
  #positions = new Map(); // room -> { epoch, offset } of the last message seen there
  #unacked = new Map(); // message id -> { room, text, sentAt }, oldest first
  #resendTimer = null;
  #online = () => this.reconnectNow(); // the browser is back online: no need to wait

  /**
   * @param {string} [url] websocket URL; defaults to socketUrl("ws")
   * @param {object} [options] any of DEFAULTS (milliseconds), plus
   *   `WebSocket` (the constructor to use) and `random` (returns [0, 1), for jitter).
   */
  constructor(url = socketUrl("ws"), options = {}) {
    this.#url = url;
    this.#options = { WebSocket: globalThis.WebSocket, random: Math.random, ...DEFAULTS };
    for (const [key, value] of Object.entries(options)) {
      if (value !== undefined) this.#options[key] = value;
    }
  }

  /** The URL this client connects to. */
  get url() {
    return this.#url;
  }

  /** The current connection state (see the class comment). */
  get state() {
    return this.#state;
  }

  /** The id the server gave this connection (its `from` in messages), or null. */
  get id() {
    return this.#id;
  }

  /** Where each room's history was when this client last heard from it. */
  get positions() {
    return new Map(this.#positions);
  }

  /** The messages sent and not acknowledged yet: [{ id, room, text?, event?, data? }]. */
  get unacked() {
    return Array.from(this.#unacked, ([id, { room, content }]) => ({ id, room, ...content }));
  }

  /** The rooms this client wants to be in: [{ room, members, joined }]. */
  get rooms() {
    return Array.from(this.#rooms, ([room, members]) => ({
      room,
      members,
      joined: members !== null,
    }));
  }

  /**
   * Call `listener(detail)` on each `type` event, one of EVENTS or an app-defined event
   * name (its messages, as for "message"); returns a function that unsubscribes.
   */
  on(type, listener) {
    if (!EVENTS.includes(type) && !EVENT_PATTERN.test(type)) {
      throw new TypeError(`unknown event ${JSON.stringify(type)}`);
    }
    if (!this.#listeners.has(type)) this.#listeners.set(type, new Set());
    this.#listeners.get(type).add(listener);
    return () => this.off(type, listener);
  }

  off(type, listener) {
    this.#listeners.get(type)?.delete(listener);
  }

  /** Open the connection (and keep it open until close()). */
  connect() {
    if (this.#state !== "idle" && this.#state !== "closed") return;
    globalThis.addEventListener?.("online", this.#online);
    this.#attempt = 0;
    this.#open();
  }

  /** Close the connection for good: no reconnect until connect() is called again. */
  close() {
    if (this.#state === "idle" || this.#state === "closed") return;
    globalThis.removeEventListener?.("online", this.#online);
    clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#drop(1000, "client closed");
    this.#setState("closed");
  }

  /** While waiting to reconnect, try at once instead. */
  reconnectNow() {
    if (this.#state !== "reconnecting") return;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#open();
  }

  /**
   * Join `room` now, or as soon as the connection is open; the client rejoins it
   * after every reconnect until leave(). Returns false if the name is invalid.
   */
  join(room) {
    if (!isValidRoom(room)) return false;
    if (!this.#rooms.has(room)) {
      this.#rooms.set(room, null);
      this.#emitRooms();
    }
    if (this.#state === "open") this.#sendJoin(room);
    return true;
  }

  /** Leave `room` (and stop rejoining it). Returns false if the client was not in it. */
  leave(room) {
    if (!this.#rooms.delete(room)) return false;
    this.#positions.delete(room);
    this.#emitRooms();
    if (this.#state === "open") this.#write({ type: "leave", room });
    return true;
  }

  /**
   * Send `text` to `room`; returns its id (its "ack" names it), or null if not open,
   * not in that room, or the text is invalid. Until acknowledged it is sent again
   * after a reconnect, and every `resendInterval` ms.
   */
  send(room, text) {
    if (!isValidText(text)) return null;
    return this.#post(room, { text });
  }

  /**
   * Send the app event `event` with `data` (any JSON) to `room`, to be handled by
   * `on(event, …)` in every member's client; like send(), returns its id or null.
   */
  publish(room, event, data = null) {
    if (typeof event !== "string" || !EVENT_PATTERN.test(event)) return null;
    return this.#post(room, { event, data });
  }

  #post(room, content) {
    if (this.#state !== "open" || this.#rooms.get(room) == null) return null;
    const id = newId();
    this.#unacked.set(id, { room, content, sentAt: Date.now() });
    this.#write({ type: "message", room, ...content, id });
    this.#resendTimer ??= setInterval(() => this.#resend(false), this.#options.resendInterval);
    return id;
  }

  // -- connection lifecycle -------------------------------------------------

  #open() {
    this.#setState("connecting");
    let socket;
    try {
      socket = new this.#options.WebSocket(this.#url);
    } catch (error) {
      // A malformed URL will not get better by retrying.
      this.#emit("error", { code: "invalid_url", detail: String(error) });
      this.close();
      return;
    }
    this.#socket = socket;
    // Events of a socket this client has already given up on are ignored.
    socket.addEventListener("open", () => {
      if (socket === this.#socket) this.#opened();
    });
    socket.addEventListener("message", (event) => {
      if (socket === this.#socket) this.#received(event.data);
    });
    socket.addEventListener("close", () => {
      if (socket === this.#socket) this.#lost();
    });
  }

  #opened() {
    this.#pendingJoins = [];
    for (const room of this.#rooms.keys()) this.#sendJoin(room, this.#positions.get(room));
    this.#pingTimer = setInterval(() => this.#ping(), this.#options.pingInterval);
    this.#setState("open");
  }

  #ping() {
    this.#write({ type: "ping" });
    this.#deadTimer ??= setTimeout(() => {
      this.#deadTimer = null;
      this.#emit("error", { code: "heartbeat_timeout", detail: "no answer from the server" });
      this.#lost();
    }, this.#options.pingTimeout);
  }

  /** The connection is gone (closed, failed, or silent): forget it and retry later. */
  #lost() {
    this.#drop(4000, "connection lost");
    let changed = false;
    for (const [room, members] of this.#rooms) {
      if (members !== null) {
        this.#rooms.set(room, null);
        changed = true;
      }
    }
    if (changed) this.#emitRooms();
    const { reconnectDelay, maxReconnectDelay, random } = this.#options;
    const ceiling = Math.min(maxReconnectDelay, reconnectDelay * 2 ** this.#attempt);
    const delay = Math.round(random() * ceiling); // "full jitter"
    this.#attempt += 1;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.#open();
    }, delay);
    this.#setState("reconnecting", { delay, retryAt: Date.now() + delay });
  }

  /** Stop the timers and detach from the current socket, closing it if need be. */
  #drop(code, reason) {
    clearInterval(this.#pingTimer);
    clearInterval(this.#resendTimer);
    this.#resendTimer = null;
    clearTimeout(this.#deadTimer);
    this.#pingTimer = this.#deadTimer = null;
    this.#id = null;
    const socket = this.#socket;
    this.#socket = null;
    if (socket && socket.readyState <= 1) {
      try {
        socket.close(code, reason);
      } catch {
        // Already closing: nothing more to do.
      }
    }
  }

  // -- frames ----------------------------------------------------------------

  #write(message) {
    if (this.#socket?.readyState !== 1) return false;
    this.#socket.send(JSON.stringify(message));
    return true;
  }

  #sendJoin(room, since = undefined) {
    if (this.#write({ type: "join", room, since })) this.#pendingJoins.push(room);
  }

  /** Send again what waits for an ack: all of a room's (`room`), or what waited long. */
  #resend(room) {
    const now = Date.now();
    for (const [id, message] of this.#unacked) {
      const due = room === false ? now - message.sentAt >= this.#options.resendInterval : true;
      if ((room === false || message.room === room) && due) {
        if (this.#rooms.get(message.room) == null) continue; // after its join
        message.sentAt = now;
        this.#write({ type: "message", room: message.room, ...message.content, id });
      }
    }
    if (this.#unacked.size === 0) {
      clearInterval(this.#resendTimer);
      this.#resendTimer = null;
    } else {
      this.#resendTimer ??= setInterval(() => this.#resend(false), this.#options.resendInterval);
    }
  }

  /** Note a room's position; false if the message there was seen already. */
  #advance(room, epoch, offset) {
    const seen = this.#positions.get(room);
    if (seen && seen.epoch === epoch && offset <= seen.offset) return false;
    this.#positions.set(room, { epoch, offset });
    return true;
  }

  #received(data) {
    clearTimeout(this.#deadTimer); // any frame shows the connection is alive
    this.#deadTimer = null;
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (message === null || typeof message !== "object") return;
    switch (message.type) {
      case "welcome":
        this.#id = message.id;
        this.#attempt = 0;
        this.#emit("welcome", { id: message.id });
        break;
      case "joined":
        this.#settleJoin(message.room);
        // A room left before the server answered is already being left.
        if (this.#rooms.has(message.room)) {
          const { room, members, epoch, offset, recovered } = message;
          const wasJoined = this.#rooms.get(room) !== null;
          this.#rooms.set(room, members);
          this.#emitRooms();
          // Again for a room already joined: only its count changed (the server
          // says so after a join repeated, or after its broker reconnected).
          if (!wasJoined) this.#emit("joined", { room, members });
          const seen = this.#positions.get(room);
          if (recovered !== undefined) {
            // What was missed follows; if it cannot, the history starts over from here.
            this.#emit("resumed", { room, recovered, missed: message.missed });
            if (!recovered && epoch != null) this.#positions.set(room, { epoch, offset });
          } else if (epoch != null && (!seen || seen.epoch !== epoch)) {
            this.#positions.set(room, { epoch, offset });
          }
          this.#resend(room);
        }
        break;
      case "left":
        this.#emit("left", { room: message.room });
        break;
      case "presence":
        if (this.#rooms.get(message.room) != null) {
          this.#rooms.set(message.room, message.members);
          this.#emitRooms();
        }
        this.#emit("presence", {
          room: message.room,
          members: message.members,
          id: message.id,
          event: message.event,
        });
        break;
      case "message":
        if (this.#advance(message.room, message.epoch, message.offset)) {
          const detail = {
            room: message.room,
            from: message.from,
            text: message.text,
            event: message.event,
            data: message.data,
            ts: message.ts,
            own: message.from === this.#id,
            epoch: message.epoch,
            offset: message.offset,
          };
          this.#emit("message", detail);
          // An app event also goes to its own listeners (a name that is no built-in event).
          if (typeof message.event === "string" && !EVENTS.includes(message.event)) {
            this.#emit(message.event, detail);
          }
        }
        break;
      case "ack":
        if (this.#unacked.delete(message.id)) {
          this.#emit("ack", { room: message.room, id: message.id, offset: message.offset });
        }
        break;
      case "error":
        if (message.code === "too_many_rooms" && this.#pendingJoins.length > 0) {
          // The server answers a connection's frames in order, so the refused
          // join is the oldest one still waiting: stop asking for that room.
          const room = this.#pendingJoins.shift();
          if (this.#rooms.delete(room)) this.#emitRooms();
        }
        this.#emit("error", {
          code: message.code,
          detail: message.detail,
          room: message.room,
          id: message.id,
        });
        break;
      default:
        break; // "pong", and whatever a newer server may add
    }
  }

  #settleJoin(room) {
    const index = this.#pendingJoins.indexOf(room);
    if (index !== -1) this.#pendingJoins.splice(index, 1);
  }

  // -- events ----------------------------------------------------------------

  #setState(state, { delay = 0, retryAt = null } = {}) {
    this.#state = state;
    this.#emit("state", { state, attempt: this.#attempt, delay, retryAt });
  }

  #emitRooms() {
    this.#emit("rooms", this.rooms);
  }

  #emit(type, detail) {
    for (const listener of this.#listeners.get(type) ?? []) {
      try {
        listener(detail);
      } catch (error) {
        // One broken listener must not break the client or the other listeners.
        (globalThis.reportError ?? console.error)(error);
      }
    }
  }
}
