// A small websocket client another page can reuse: no framework, no build step.

/**
 * The websocket URL for `path`, resolved against the page's own address:
 * ws: under http:, wss: under https:, and relative paths keep any proxy prefix.
 */
export function socketUrl(path, base = window.location.href) {
  const url = new URL(path, base);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

/**
 * Open a websocket and report to callbacks.
 *
 * onState(state): "connecting", "open" or "closed".
 * onMessage(data): each message as received (string, or Blob for binary).
 * Returns { send(data), close() }.
 */
export function connect(url, { onState = () => {}, onMessage = () => {} } = {}) {
  const socket = new WebSocket(url);
  onState("connecting");
  socket.addEventListener("open", () => onState("open"));
  socket.addEventListener("close", () => onState("closed"));
  socket.addEventListener("message", (event) => onMessage(event.data));
  return {
    send(data) {
      if (socket.readyState !== WebSocket.OPEN) return false;
      socket.send(data);
      return true;
    },
    close() {
      socket.close(1000);
    },
  };
}
