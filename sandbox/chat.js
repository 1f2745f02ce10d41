// The sandbox chat: send what is typed, long-poll the conversation, draw both sides.
"use strict";
(function () {
  const log = document.getElementById("log");
  const text = document.getElementById("text");
  let after = 0;

  function post(path, body) {
    return fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  }

  function draw(entry) {
    const bubble = document.createElement("div");
    bubble.className = "msg " + (entry.from === "user" ? "user" : "bot");
    bubble.dataset.seq = String(entry.seq);
    if (entry.from === "bot") {
      const who = document.createElement("span");
      who.className = "who";
      who.textContent = entry.method === "editMessageText" ? "edited" : "bot";
      bubble.appendChild(who);
    }
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = entry.text;
    bubble.appendChild(body);
    if (entry.filename) {
      const file = document.createElement("div");
      file.className = "file";
      const link = document.createElement("a");
      link.href = "/chat/file/" + encodeURIComponent(entry.message_id);
      link.textContent = "Download " + entry.filename + (entry.size != null ? " (" + entry.size + " bytes)" : "");
      file.appendChild(link);
      bubble.appendChild(file);
    }
    for (const row of entry.buttons || []) {
      const line = document.createElement("div");
      line.className = "buttons";
      for (const button of row) {
        const press = document.createElement("button");
        press.type = "button";
        press.textContent = button.text;
        press.addEventListener("click", () => post("/chat/press", { message_id: entry.message_id, data: button.data }));
        line.appendChild(press);
      }
      bubble.appendChild(line);
    }
    log.appendChild(bubble);
    log.scrollTop = log.scrollHeight;
  }

  async function poll() {
    for (;;) {
      try {
        const answer = await fetch("/chat/messages?after=" + after + "&wait=20");
        const found = (await answer.json()).messages || [];
        for (const entry of found) {
          draw(entry);
          after = Math.max(after, entry.seq);
        }
      } catch (error) {
        await new Promise((resolve) => setTimeout(resolve, 1000)); // the stand-in is restarting
      }
    }
  }

  function say(words) {
    words = words.trim();
    if (words) post("/chat/send", { text: words });
  }

  document.getElementById("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    say(text.value);
    text.value = "";
    text.focus();
  });
  for (const chip of document.querySelectorAll("#chips button")) {
    chip.addEventListener("click", () => say(chip.dataset.text));
  }
  poll();
})();
