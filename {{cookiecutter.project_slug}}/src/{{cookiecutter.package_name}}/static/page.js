// Wires the page's elements to a RoomsClient; all protocol logic lives in client.js.
//
// The page's query string may tune the client (milliseconds, clamped to sane
// ranges), e.g. ?reconnectDelay=100&maxReconnectDelay=1000, and join rooms at
// start, e.g. ?room=lobby&room=dev.
import { DEFAULTS, isValidRoom, RoomsClient, socketUrl } from "./client.js";

const MAX_LOG_ENTRIES = 500;
const OPTION_RANGES = {
  reconnectDelay: [50, 60_000],
  maxReconnectDelay: [100, 600_000],
  pingInterval: [1_000, 600_000],
  pingTimeout: [500, 600_000],
};

const $ = (id) => document.getElementById(id);
const stateBadge = $("state");
const retryButton = $("retry");
const me = $("me");
const joinForm = $("join-form");
const roomInput = $("room-name");
const roomList = $("rooms");
const log = $("log");
const compose = $("compose");
const sendRoom = $("send-room");
const textInput = $("text");
const sendButton = $("send-button");

const params = new URLSearchParams(location.search);
const client = new RoomsClient(
  socketUrl("ws", location.href, params.get("token")),
  optionsFrom(params),
);

function optionsFrom(query) {
  const options = {};
  for (const [name, [low, high]] of Object.entries(OPTION_RANGES)) {
    const value = Number(query.get(name) ?? DEFAULTS[name]);
    if (Number.isFinite(value)) options[name] = Math.min(high, Math.max(low, value));
  }
  return options;
}

// -- connection state ---------------------------------------------------------

let countdown = null;
let wasOpen = false;

function showState({ state, attempt, retryAt }) {
  clearInterval(countdown);
  countdown = null;
  stateBadge.dataset.state = state;
  retryButton.hidden = state !== "reconnecting";
  if (state === "reconnecting") {
    const tick = () => {
      const seconds = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
      stateBadge.textContent = `reconnecting in ${seconds} s`;
    };
    tick();
    countdown = setInterval(tick, 250);
  } else if (state === "connecting" && attempt > 0) {
    stateBadge.textContent = `connecting (attempt ${attempt + 1})`;
  } else {
    stateBadge.textContent = state;
  }
  if (state === "open") {
    wasOpen = true;
  } else if (wasOpen && state === "reconnecting") {
    wasOpen = false;
    me.hidden = true;
    addInfo("Connection lost; reconnecting by itself.", "warning");
  }
  updateSendButton();
}

client.on("state", showState);
retryButton.addEventListener("click", () => client.reconnectNow());

client.on("welcome", ({ id }) => {
  me.textContent = `you are ${id}`;
  me.hidden = false;
  addInfo(`Connected as ${id}.`);
});

// -- rooms ----------------------------------------------------------------------

let selectedRoom = null;

function renderRooms(rooms) {
  if (!rooms.some(({ room }) => room === selectedRoom)) selectedRoom = rooms[0]?.room ?? null;
  roomList.replaceChildren(...rooms.map(roomItem));
  sendRoom.replaceChildren(
    ...rooms.map(({ room, joined }) => {
      const option = new Option(`#${room}`, room, false, room === selectedRoom);
      option.disabled = !joined;
      return option;
    }),
  );
  sendRoom.disabled = rooms.length === 0;
  updateSendButton();
}

function roomItem({ room, members, joined }) {
  const item = document.createElement("li");
  item.className = "room";
  item.dataset.testid = "room";
  item.dataset.room = room;
  item.dataset.joined = String(joined);
  item.classList.toggle("selected", room === selectedRoom);

  const select = document.createElement("button");
  select.type = "button";
  select.className = "room-name";
  select.textContent = `#${room}`;
  select.title = "Send messages to this room";
  select.setAttribute("aria-pressed", String(room === selectedRoom));
  select.addEventListener("click", () => {
    selectedRoom = room;
    renderRooms(client.rooms);
    textInput.focus();
  });

  const count = document.createElement("span");
  count.className = "members";
  count.title = joined ? "members in this room" : "joining…";
  const number = document.createElement("span");
  number.dataset.testid = "members";
  number.textContent = joined ? String(members) : "…";
  const unit = document.createElement("span");
  unit.className = "visually-hidden";
  unit.textContent = joined ? (members === 1 ? " member" : " members") : " joining";
  count.append(number, unit);

  const leave = document.createElement("button");
  leave.type = "button";
  leave.className = "leave";
  leave.dataset.testid = "leave";
  leave.textContent = "Leave";
  leave.setAttribute("aria-label", `Leave ${room}`);
  leave.addEventListener("click", () => client.leave(room));

  item.append(select, count, leave);
  return item;
}

client.on("rooms", renderRooms);

joinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const room = roomInput.value.trim();
  if (!client.join(room)) {
    roomInput.setCustomValidity("Use 1-64 letters, digits, _ - . or :");
    roomInput.reportValidity();
    return;
  }
  selectedRoom = room;
  renderRooms(client.rooms);
  roomInput.value = "";
});
roomInput.addEventListener("input", () => roomInput.setCustomValidity(""));

sendRoom.addEventListener("change", () => {
  selectedRoom = sendRoom.value;
  renderRooms(client.rooms);
});

client.on("joined", ({ room, members }) => {
  addInfo(`Joined #${room} (${members} ${members === 1 ? "member" : "members"}).`);
});
client.on("left", ({ room }) => addInfo(`Left #${room}.`));
client.on("presence", ({ room, id, event }) => {
  addInfo(`${id} ${event === "join" ? "joined" : "left"} #${room}.`);
});
client.on("resumed", ({ room, recovered, missed }) => {
  if (!recovered) {
    addInfo(`Messages sent to #${room} while you were away could not be recovered.`, "error");
  } else if (missed > 0) {
    addInfo(`${missed} missed ${missed === 1 ? "message" : "messages"} in #${room} came back.`);
  }
});
const refused = new Set(); // messages already said to be refused: they are sent again
client.on("error", ({ code, detail, id }) => {
  if (code === "unavailable" && id !== undefined) {
    if (refused.has(id)) return;
    refused.add(id);
    addInfo(`Not delivered yet, sending again: ${detail}`, "error");
    return;
  }
  addInfo(`${code}: ${detail}`, "error");
});
client.on("ack", ({ id }) => refused.delete(id));

// -- messages -----------------------------------------------------------------

function updateSendButton() {
  const target = client.rooms.find(({ room }) => room === selectedRoom);
  sendButton.disabled = client.state !== "open" || !target?.joined;
}

compose.addEventListener("submit", (event) => {
  event.preventDefault();
  if (selectedRoom !== null && client.send(selectedRoom, textInput.value)) {
    textInput.value = "";
  }
  textInput.focus();
});

client.on("message", ({ room, from, text, event, data, ts, own }) => {
  const entry = logEntry("message");
  entry.classList.toggle("own", own);
  const who = document.createElement("span");
  who.className = "from";
  who.textContent = own ? "you" : from;
  who.style.setProperty("--hue", String(hue(from)));
  const where = document.createElement("span");
  where.className = "room-tag";
  where.textContent = `#${room}`;
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text ?? "";
  entry.append(timeOf(ts), where, who, body);
  if (event !== undefined) {
    // An app event (from another client or the backend): its name and data as JSON.
    const app = document.createElement("code");
    app.className = "event";
    app.dataset.testid = "event";
    app.textContent = `${event} ${JSON.stringify(data)}`;
    entry.append(app);
  }
  append(entry);
});

function addInfo(text, kind = "info") {
  const entry = logEntry(kind);
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  entry.append(timeOf(Date.now()), body);
  append(entry);
}

function logEntry(kind) {
  const entry = document.createElement("div");
  entry.className = `entry ${kind}`;
  entry.dataset.kind = kind;
  entry.dataset.testid = "log-entry";
  return entry;
}

function timeOf(ms) {
  const time = document.createElement("time");
  const date = new Date(ms);
  time.dateTime = date.toISOString();
  time.textContent = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  return time;
}

function append(entry) {
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.append(entry);
  while (log.childElementCount > MAX_LOG_ENTRIES) log.firstElementChild.remove();
  if (atBottom) log.scrollTop = log.scrollHeight;
}

function hue(text) {
  let hash = 0;
  for (const char of text) hash = (hash * 31 + char.codePointAt(0)) % 360;
  return hash;
}

// -- start ----------------------------------------------------------------------

for (const room of params.getAll("room")) {
  if (isValidRoom(room)) client.join(room);
}
client.connect();
