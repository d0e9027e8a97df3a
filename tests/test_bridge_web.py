"""The browser control page of ``live --web``: who may load it (loopback names, the token off
loopback, no other site's WebSocket), its WebSocket protocol through the control layer (refusals as
over OSC), and the page itself in a real headless Chromium on a live session on a dummy JACK
server: it loads, a fader moved with the keyboard changes the gain the engine reports, the meters
move with the audio, the acapella button mutes the other stems. ``STEMSTREAM_WEB_SCREENSHOT=PATH``
keeps the screenshot (docs/web-control.png was made so)."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from stemstream.bridge.control.status import MeterTap, SessionStatus
from stemstream.bridge.control.web import WebControl
from stemstream.bridge.live.processor import LiveConfig, LiveProcessor
from stemstream.bridge.osc.routes import OscRoutes
from tests.bridge_support import pump_sessions, stand_in_factory

DJ = ("vocals", "drums", "bass", "other")
BLOCK = 128


@pytest.fixture()
def page():
    """A processor with DJ stem names, its control layer and a page server on a free loopback port."""
    cfg = LiveConfig(model="tiny", sample_rate=44100, block_size=BLOCK, routing="both")
    proc = LiveProcessor(cfg, stand_in_factory(BLOCK, started=False), DJ)
    routes = OscRoutes(proc)
    web = WebControl(routes, SessionStatus(proc, routes, MeterTap(proc.read_meters).reader("web")), port=0).start()
    yield proc, routes, web
    web.stop()
    proc.close()


def _get(url: str, host: str | None = None) -> tuple[int, str, dict]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def test_the_page_is_served_from_the_package_to_loopback_names_only(page) -> None:
    _, _, web = page
    status, body, headers = _get(web.url)
    assert status == 200 and '<script src="app.js">' in body and web.token is None
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "http" not in body.replace("http-equiv", "")  # nothing fetched from elsewhere
    status, body, _ = _get(web.url + "app.js")
    assert status == 200 and "new WebSocket" in body
    assert _get(web.url + "nothing")[0] == 404
    # DNS rebinding: a name that resolved to 127.0.0.1 for a page elsewhere
    assert _get(web.url, host=f"attacker.example:{web.port}")[0] == 403
    assert _get(web.url, host=f"localhost:{web.port}")[0] == 200


def test_off_loopback_a_token_is_required() -> None:
    """Bound to every address (reached here only through loopback) a token is made up and required."""
    cfg = LiveConfig(model="tiny", sample_rate=44100, block_size=BLOCK, routing="both")
    proc = LiveProcessor(cfg, stand_in_factory(BLOCK, started=False), DJ)
    routes = OscRoutes(proc)
    web = WebControl(routes, SessionStatus(proc, routes), host="0.0.0.0", port=0).start()
    try:
        assert web.token and f"?token={web.token}" in web.url
        base = f"http://127.0.0.1:{web.port}/"
        assert _get(base)[0] == 403 and _get(base + "?token=wrong")[0] == 403
        assert _get(base + "app.js?token=" + web.token)[0] == 200
        from websockets.exceptions import InvalidStatus
        from websockets.sync.client import connect

        with pytest.raises(InvalidStatus):
            connect(f"ws://127.0.0.1:{web.port}/ws", open_timeout=5).close()
        with connect(f"ws://127.0.0.1:{web.port}/ws?token={web.token}", open_timeout=5) as ws:
            assert json.loads(ws.recv(timeout=5))["type"] == "status"
    finally:
        web.stop()
        proc.close()


def test_the_websocket_applies_changes_through_the_control_layer(page) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    proc, routes, web = page
    ws_url = f"ws://127.0.0.1:{web.port}/ws"
    with pytest.raises(InvalidStatus):  # another site's page cannot drive the mixer through the browser
        connect(ws_url, origin="http://attacker.example", open_timeout=5).close()
    with connect(ws_url, origin=f"http://127.0.0.1:{web.port}", open_timeout=5) as ws:
        frame = json.loads(ws.recv(timeout=5))
        assert frame["type"] == "status" and frame["stems"] == list(DJ) and frame["gain"] == [1.0] * 4
        assert {"latency_ms", "cpu_load", "deadline_misses", "xruns", "rms", "peak"} <= set(frame)
        ws.send(json.dumps({"address": "/stemstream/stem/drums/gain", "args": [0.25]}))
        ws.send(json.dumps({"address": "/stemstream/acapella", "args": [1]}))
        ws.send(json.dumps({"address": "/stemstream/get/latency", "args": []}))
        ws.send(json.dumps({"address": "/stemstream/stem/drums/gain", "args": [9.0]}))
        ws.send("not json")
        answers = []
        while len(answers) < 3:
            message = json.loads(ws.recv(timeout=5))
            if message["type"] != "status":
                answers.append(message)
    assert proc.controls.gain[1] == 0.25 and proc.controls.mute.tolist() == [0, 1, 1, 1]
    assert answers[0] == {"type": "reply", "address": "/stemstream/get/latency",
                          "args": [proc.latency_samples, pytest.approx(1000 * proc.latency_samples / 44100)]}
    over_osc = routes.dispatch("/stemstream/stem/drums/gain", (9.0,))  # the same refusal as over OSC
    assert answers[1] == {"type": "error", "address": "/stemstream/stem/drums/gain", "reason": "out_of_range",
                          "message": over_osc.refusal.message}
    assert answers[2]["reason"] == "malformed" and answers[2]["address"] == ""
    assert routes.counters.surfaces["web"] == [3, 1] and routes.counters.malformed == 1


# ---- the page in a real browser, on a live session -------------------------------------------------
SR, PERIOD = 44100, 1024


def _browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=760,610", "--force-device-scale-factor=1", "--no-first-run"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver_path), options=options)


def _wait(cond, timeout: float = 10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    return cond()


def test_the_page_in_headless_chromium_drives_a_live_session(monkeypatch, tmp_path) -> None:
    from stemstream.benchmarks.rig.jack_player import JackPlayer, music_like
    from stemstream.benchmarks.rig.jack_server import DummyJackServer, jackd_available
    from stemstream.bridge.live.runner import HostOptions, LiveRun

    if not jackd_available():
        pytest.skip("jackd is not installed (apt-get install jackd2)")
    driver = _browser()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    try:
        with DummyJackServer(SR, PERIOD, realtime=True) as server:
            monkeypatch.setenv("JACK_DEFAULT_SERVER", server.name)
            player = JackPlayer(music_like(2.0, SR, seed=3), "player", server.name, loop=True).activate()
            options = HostOptions(audio="jack", jack_server=server.name, jack_inputs=tuple(player.port_names),
                                  osc_port=None, web_port=0)
            config = LiveConfig(model="tiny", sample_rate=SR, block_size=PERIOD, routing="stems", queue_blocks=4)
            run = LiveRun(config, options, factory=stand_in_factory(PERIOD, started=True), stems=DJ)
            try:
                player.play()
                driver.get(run.web.url)
                assert driver.title == "stemstream live"
                assert _wait(lambda: driver.find_element(By.ID, "connection").text == "live")

                def meters() -> list[float]:  # 0 for a strip the page has not built yet (a busy machine)
                    found = [driver.find_elements(By.CSS_SELECTOR, f"#strip-{s} .meter") for s in DJ]
                    return [float(f[0].get_attribute("data-rms")) if f else 0.0 for f in found]

                assert _wait(lambda: min(meters()) > 1e-3), meters()  # the meters move with the audio
                fader = driver.find_element(By.CSS_SELECTOR, "#strip-drums .fader")
                fader.send_keys(Keys.HOME)  # the drums fader all the way down
                mixer = lambda: run.routes.dispatch("/stemstream/get/mixer", ()).replies[0][1]  # noqa: E731
                assert _wait(lambda: mixer()[5] == 0.0), mixer()  # the gain the engine reports
                assert _wait(lambda: meters()[1] < 1e-5 and min(meters()[0:1] + meters()[2:]) > 1e-3), meters()
                for _ in range(50):  # back up in 0.01 steps: half way
                    fader.send_keys(Keys.ARROW_UP)
                assert _wait(lambda: abs(mixer()[5] - 0.5) < 1e-9), mixer()
                assert "-6.0 dB" in driver.find_element(By.CSS_SELECTOR, "#strip-drums .gain").text
                driver.find_element(By.ID, "acapella").click()
                assert _wait(lambda: run.processor.controls.mute.tolist() == [0, 1, 1, 1])
                assert _wait(lambda: "on" in driver.find_element(By.ID, "acapella").get_attribute("class"))
                assert _wait(lambda: max(meters()[1:]) < 1e-5 and meters()[0] > 1e-3), meters()
                assert driver.find_element(By.ID, "xruns").text.isdigit()
                assert driver.find_element(By.ID, "latency").text.endswith(" ms")
                shot = os.environ.get("STEMSTREAM_WEB_SCREENSHOT") or str(tmp_path / "web-control.png")
                driver.find_element(By.ID, "acapella").click()  # every stem heard again, for the picture
                time.sleep(0.5)
                assert driver.save_screenshot(shot)
                with open(shot, "rb") as f:
                    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
                assert run.routes.counters.surfaces["web"][1] == 0
            finally:
                run.close()
                player.close()
    finally:
        driver.quit()


def test_meter_taps_keep_a_peak_hold_per_reader(page) -> None:
    proc, _, _ = page
    tap = MeterTap(proc.read_meters)
    osc, web = tap.reader("osc"), tap.reader("web")
    block = np.full((BLOCK, 2), 0.5, np.float32)
    for _ in range(12):
        proc.process(block, None, np.zeros((2, BLOCK), np.float32))
        pump_sessions(proc)
    first = osc()[1]
    assert first.max() > 0.0
    np.testing.assert_array_equal(web()[1], first)  # the OSC read did not take the web page's peak
    assert osc()[1].max() == 0.0 and web()[1].max() == 0.0  # no audio since: both holds empty
