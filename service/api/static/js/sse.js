// A job's Server-Sent Events. EventSource cannot send headers, so with an API key the
// stream is read with fetch() instead, keeping the key out of URLs and server logs.

import { apiKey, authHeaders } from "./api.js";

const RETRY_MS = 1000;

// handlers: {epoch(data), status(data), end(data), error(message)}; returns {close()}.
export function openJobStream(jobId, handlers) {
  const url = `/jobs/${jobId}/events`;
  return apiKey() ? fetchStream(url, handlers) : eventSource(url, handlers);
}

function dispatch(handlers, name, data) {
  const handler = handlers[name];
  if (handler) handler(JSON.parse(data));
}

function eventSource(url, handlers) {
  const source = new EventSource(url);
  for (const name of ["epoch", "status"]) {
    source.addEventListener(name, (event) => dispatch(handlers, name, event.data));
  }
  // Without close() the browser would reconnect after the server ends the stream.
  source.addEventListener("end", (event) => {
    source.close();
    dispatch(handlers, "end", event.data);
  });
  return { close: () => source.close() };
}

function fetchStream(url, handlers) {
  const controller = new AbortController();
  let lastId = null;
  let isDone = false;

  async function connect() {
    const headers = { ...authHeaders(), Accept: "text/event-stream" };
    if (lastId !== null) headers["Last-Event-ID"] = lastId;
    const response = await fetch(url, { headers, signal: controller.signal });
    if (!response.ok) {
      isDone = true;
      if (handlers.error) handlers.error(`${response.status} ${await response.text()}`);
      return;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      // A CR ending this chunk may be half of a CRLF; it waits for the next chunk.
      buffer += value;
      const tail = buffer.endsWith("\r") ? "\r" : "";
      buffer = buffer.slice(0, buffer.length - tail.length).replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        onBlock(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
      }
      buffer += tail;
    }
  }

  function onBlock(block) {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
      else if (field === "id") lastId = value;
    }
    if (!data.length) return;
    if (name === "end") isDone = true;
    dispatch(handlers, name, data.join("\n"));
  }

  async function run() {
    while (!isDone && !controller.signal.aborted) {
      try {
        await connect();
      } catch {
        if (controller.signal.aborted) return;
      }
      // A dropped connection resumes after the last epoch seen, like EventSource would.
      if (!isDone) await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }

  run();
  return { close: () => controller.abort() };
}
