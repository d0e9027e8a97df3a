// stemstream live: the control page. Status frames arrive over the WebSocket; every change is sent
// as a control message of the OSC address space ({address, args}) and applied by the session's
// control layer, which refuses what it refuses over OSC (the refusal is shown at the bottom).
"use strict";

const token = new URLSearchParams(location.search).get("token");
const wsUrl = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws" +
  (token ? "?token=" + encodeURIComponent(token) : "");
const $ = (id) => document.getElementById(id);
let socket = null;
let stems = [];
let last = null;
const touched = {};  // stem -> time its fader was last moved here (its frames do not move it back meanwhile)

function send(address, args) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({address, args}));
}

function db(value) {
  return value > 1e-6 ? 20 * Math.log10(value) : -Infinity;
}

function gainText(gain) {
  const d = db(gain);
  return d === -Infinity ? "-inf dB" : (d >= 0 ? "+" : "") + d.toFixed(1) + " dB";
}

function meterHeight(value) {  // -60..0 dBFS -> 0..100 %
  return Math.max(0, Math.min(100, (db(value) + 60) / 60 * 100));
}

function build(names) {
  stems = names;
  const main = $("strips");
  main.textContent = "";
  for (const stem of names) {
    const strip = document.createElement("section");
    strip.className = "strip";
    strip.id = "strip-" + stem;
    strip.innerHTML =
      '<h2></h2><div class="controls"><div class="meter" data-rms="0" data-peak="0"><div class="rms"></div>' +
      '<div class="peak"></div></div><input class="fader" type="range" min="0" max="2" step="0.01" value="1"' +
      ' aria-label="gain"></div><div class="gain">0.0 dB</div><div class="buttons">' +
      '<button class="mute" type="button" title="mute">M</button>' +
      '<button class="solo" type="button" title="solo">S</button></div>';
    strip.querySelector("h2").textContent = stem;
    const fader = strip.querySelector(".fader");
    fader.addEventListener("input", () => {
      touched[stem] = performance.now();
      strip.querySelector(".gain").textContent = gainText(Number(fader.value));
      send("/stemstream/stem/" + stem + "/gain", [Number(fader.value)]);
    });
    fader.addEventListener("dblclick", () => { fader.value = 1; fader.dispatchEvent(new Event("input")); });
    strip.querySelector(".mute").addEventListener("click", (e) =>
      send("/stemstream/stem/" + stem + "/mute", [e.target.classList.contains("on") ? 0 : 1]));
    strip.querySelector(".solo").addEventListener("click", (e) =>
      send("/stemstream/stem/" + stem + "/solo", [e.target.classList.contains("on") ? 0 : 1]));
    main.appendChild(strip);
  }
}

function show(s) {
  if (!last || s.stems.join() !== stems.join()) build(s.stems);
  last = s;
  $("model").textContent = s.model;
  $("latency").textContent = s.latency_ms.toFixed(1) + " ms";
  $("cpu").textContent = (100 * s.cpu_load).toFixed(1) + " % callback, " + s.process_cpu_percent.toFixed(0) + " % process";
  $("misses").textContent = s.deadline_misses;
  $("xruns").textContent = s.xruns;
  const now = performance.now();
  s.stems.forEach((stem, i) => {
    const strip = $("strip-" + stem);
    const meter = strip.querySelector(".meter");
    meter.dataset.rms = s.rms[i];
    meter.dataset.peak = s.peak[i];
    meter.querySelector(".rms").style.height = meterHeight(s.rms[i]) + "%";
    meter.querySelector(".peak").style.bottom = meterHeight(s.peak[i]) + "%";
    const fader = strip.querySelector(".fader");
    if (!(now - (touched[stem] || -1e9) < 600)) {
      fader.value = s.gain[i];
      strip.querySelector(".gain").textContent = gainText(s.gain[i]);
    }
    strip.querySelector(".mute").classList.toggle("on", s.mute[i]);
    strip.querySelector(".solo").classList.toggle("on", s.solo[i]);
  });
  $("acapella").classList.toggle("on", s.acapella);
  $("instrumental").classList.toggle("on", s.instrumental);
  $("bypass").classList.toggle("on", s.bypass);
  $("acapella").disabled = $("instrumental").disabled = !s.has_vocals;
  $("note").textContent = s.midi || (s.messages.length ? s.messages[s.messages.length - 1] : "");
}

$("acapella").addEventListener("click", () => send("/stemstream/acapella", [last && last.acapella ? 0 : 1]));
$("instrumental").addEventListener("click", () => send("/stemstream/instrumental", [last && last.instrumental ? 0 : 1]));
$("all").addEventListener("click", () => {
  send("/stemstream/stem/*/mute", [0]);
  send("/stemstream/stem/*/solo", [0]);
});
$("bypass").addEventListener("click", () => send("/stemstream/bypass", [last && last.bypass ? 0 : 1]));

function connect() {
  socket = new WebSocket(wsUrl);
  socket.onopen = () => { $("connection").textContent = "live"; $("connection").className = "on"; };
  socket.onclose = () => {
    $("connection").textContent = "reconnecting";
    $("connection").className = "off";
    setTimeout(connect, 1000);
  };
  socket.onmessage = (event) => {
    const m = JSON.parse(event.data);
    if (m.type === "status") show(m);
    else if (m.type === "error") $("error").textContent = "refused " + m.address + ": " + m.reason + ": " + m.message;
  };
}
connect();
