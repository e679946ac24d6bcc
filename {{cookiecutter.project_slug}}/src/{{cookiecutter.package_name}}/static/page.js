// Wires the page's elements to the websocket client.
import { connect, socketUrl } from "./client.js";

const state = document.getElementById("state");
const log = document.getElementById("log");
const form = document.getElementById("compose");
const input = document.getElementById("text");
const button = form.querySelector("button");

function append(kind, text) {
  const item = document.createElement("li");
  item.className = kind;
  item.textContent = text;
  log.append(item);
  item.scrollIntoView({ block: "end" });
}

const client = connect(socketUrl("ws/echo"), {
  onState(value) {
    state.dataset.state = value;
    state.textContent = value;
    button.disabled = value !== "open";
  },
  onMessage(data) {
    append("received", typeof data === "string" ? data : "(binary message)");
  },
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (client.send(input.value)) {
    append("sent", input.value);
    input.value = "";
  }
});
