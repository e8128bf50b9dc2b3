"""`zoo serve` and `zoo site` (issue 28) over a store of real tiny runs: the pages and their
JSON twins against the CLI's own JSON, escaping, caps and bad requests in-process (Starlette's
test client); then a real `zoo serve` on 127.0.0.1 read by a real headless Chromium
(Debian's chromium and chromium-driver, through Selenium) and a plain HTTP client speaking
TensorFlow Serving's REST format; and a `zoo site` opened from file://."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


pytest.importorskip("starlette")
with warnings.catch_warnings():  # Starlette 1.x would rather have httpx2; httpx works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from zoo_core.web.app import create_app  # noqa: E402
from zoo_core.web.models import MAX_UPLOAD_BYTES  # noqa: E402

FASHION = Path("/usr/share/datasets/fashion-mnist")
QUICK = ["--epochs", "1", "--limit", "500"]
EVIL = "<script>alert(1)</script>"
ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def real_images(n: int) -> np.ndarray:
    raw = gzip.decompress((FASHION / "t10k-images-idx3-ubyte.gz").read_bytes())
    return np.frombuffer(raw, np.uint8, offset=16, count=n * 784).reshape(n, 28, 28, 1)


@pytest.fixture(scope="module")
def store(recorded_runs):
    """A store of a cnn run and an rnn run (tiny), the rnn tagged EVIL as a store written
    elsewhere could hold it (`zoo runs tag` refuses such a tag); (home, db, runs)."""
    # the rnn with one layer, one way, over the rows: an eighth of the registry's cells
    home, runs = recorded_runs(["cnn", *QUICK], ["rnn", *QUICK, "--set", "layers=1", "--set",
                                                 "bidirectional=false", "--set", "read=rows"])
    db = home / "zoo.db"
    rnn = next(r["run_id"] for r in runs if r["model"] == "rnn")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET tags = ? WHERE run_id = ?", (json.dumps([EVIL]), rnn))
    return home, db, runs


@pytest.fixture(scope="module")
def cli_json(zoo):
    """``cli_json(store, *args)``: what `zoo --store STORE ARGS` prints, read as JSON (the
    command must succeed)."""
    return lambda store, *args: json.loads(zoo(*args, store=store, code=0).stdout)


@pytest.fixture(scope="module")
def client(store):
    with TestClient(create_app(str(store[1])), raise_server_exceptions=False) as c:
        yield c


# -- pages and their JSON twins: what the CLI says -------------------------------------------------


def test_json_twins_are_the_cli_json(cli_json, store, client):
    home, db, runs = store
    rows = cli_json(db, "leaderboard", "--format", "json", "--include-partial")
    assert [r["best_run"] for r in rows] and \
        client.get("/index.json?include_partial=1").json()["rows"] == rows
    assert client.get("/index.json").json()["rows"] == \
        cli_json(db, "leaderboard", "--format", "json") == []
    assert client.get("/runs.json").json() == cli_json(db, "runs", "--json")
    for run in runs:
        page = client.get(f"/runs/{run['run_id']}.json").json()
        shown = cli_json(db, "show", run["run_id"], "--json")
        assert {k: page[k] for k in shown} == shown
        assert page["sources"]["epochs"] == "command line"
        assert page["reproduce"] == cli_json(
            db, "leaderboard", "--runs", "--commands", "--include-partial", "--json",
            "--model", run["model"])[0]["command"]
    card = client.get("/models/cnn.json").json()
    assert card["model"] == cli_json(db, "list", "cnn", "--details", "--json")[0]
    assert card["best_run"] in [r["run_id"] for r in runs if r["model"] == "cnn"]
    assert client.get("/sweeps.json").json() == cli_json(db, "sweep", "list", "--json")


def test_pages_show_the_rows_and_escape_what_users_wrote(cli_json, store, client):
    home, db, runs = store
    page = client.get("/?include_partial=1")
    assert page.status_code == 200 and page.headers["content-security-policy"]
    for row in cli_json(db, "leaderboard", "--format", "json", "--include-partial"):
        assert f'href="/runs/{row["best_run"]}"' in page.text  # each row's best run
    assert "limit=500" in page.text and "<svg" in page.text
    for url in ["/runs", f"/runs/{runs[1]['run_id']}", "/models/rnn"]:
        text = client.get(url).text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and EVIL not in text, url
    assert client.get("/?tag=" + EVIL).status_code == 200  # filters are text as well
    compare = client.get(f"/compare.json?a={runs[0]['run_id']}&b={runs[1]['run_id']}").json()
    assert compare["runs"] == [runs[0]["run_id"], runs[1]["run_id"]]
    assert "test accuracy" in compare["metrics"]


@pytest.mark.parametrize("method, url, body, code", [
    ("GET", "/runs/no-such-run", None, 404),
    ("GET", "/runs/no-such-run.json", None, 404),
    ("GET", "/models/no-such-model", None, 404),
    ("GET", "/sweeps/no-such-sweep.json", None, 404),
    ("GET", "/compare?a=x", None, 400),
    ("GET", "/runs/latest/files/..%2F..%2Fzoo.db", None, 404),
    ("GET", "/runs/latest/files/checkpoint.json", None, 404),
    ("GET", "/runs/..%2F..%2Fetc/files/curves.png", None, 404),
    ("GET", "/static/..%2F..%2F__init__.py", None, 404),
    ("GET", "/models/cnn/weights/..%2Fzoo.db", None, 404),
    ("POST", "/v1/models/cnn:predict", b"{not json", 400),
    ("POST", "/v1/models/cnn:predict", b'{"instances": [[1, 2]]}', 400),
    ("POST", "/v1/models/cnn:predict", b'{"instances": [], "inputs": []}', 400),
    ("POST", "/v1/models/cnn:explode", b"{}", 404),
    ("POST", "/v1/models/no-such-run:predict", b'{"instances": []}', 404),
    ("POST", "/models/cnn/try", b"not a picture", 400),
    ("DELETE", "/runs/latest", None, 405),
    ("PUT", "/v1/models/cnn", b"{}", 405),
])
def test_bad_requests_get_one_line_and_the_server_keeps_serving(client, method, url, body, code):
    r = client.request(method, url, content=body)
    assert r.status_code == code, r.text
    assert "Traceback" not in r.text and "File \"" not in r.text
    if url.endswith(".json") or url.startswith("/v1/") or url.endswith("/try"):
        error = r.json()["error"]
        assert error and "\n" not in error
    elif code != 405:
        assert r.headers["content-type"].startswith("text/html") and 'id="error"' in r.text
    assert client.get("/").status_code == 200


def test_run_files_are_the_run_folders_pictures_only(store, client):
    run_id = store[2][0]["run_id"]
    png = client.get(f"/runs/{run_id}/files/curves.png")
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get(f"/runs/{run_id}/files/config.json").json()["run_id"] == run_id
    assert client.get("/models/cnn/weights/fashion.zoopack").content[:2] == b"PK"


# -- predictions ----------------------------------------------------------------------------------


def test_predict_api_speaks_tf_serving_and_agrees_with_zoo_predict(
        cli_json, store, client, tmp_path):
    home, db, runs = store
    x = real_images(3)
    np.save(tmp_path / "three.npy", x)
    cli_answer = cli_json(db, "predict", "cnn", tmp_path / "three.npy", "--json",
                          "--top", "10")
    rows = client.post("/v1/models/cnn:predict", json={"instances": x.tolist()}).json()
    columns = client.post("/v1/models/cnn:predict",
                          json={"inputs": {"images": x[..., 0].tolist()}}).json()
    by_id = client.post(f"/v1/models/{cli_answer['run_id']}:predict",
                        json={"signature_name": "serving_default",
                              "instances": [{"images": image} for image in x.tolist()]}).json()
    for i, predicted in enumerate(cli_answer["predictions"]):
        top = predicted["top"][0]
        assert rows["predictions"][i]["class_ids"] == top["class_id"]
        assert rows["predictions"][i]["probabilities"][top["class_id"]] == \
            pytest.approx(top["probability"], abs=1e-6)
        assert columns["outputs"]["class_ids"][i] == top["class_id"]
        assert by_id["predictions"][i] == rows["predictions"][i]
    status = client.get("/v1/models/cnn").json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"


def test_uploads_are_capped_in_bytes_and_pixels_before_decoding(client):
    bomb = io.BytesIO()
    Image.new("L", (6000, 6000)).save(bomb, "PNG")  # ~36 MB of pixels in a few kB
    assert len(bomb.getvalue()) < MAX_UPLOAD_BYTES
    r = client.post("/models/cnn/try", content=bomb.getvalue())
    assert r.status_code == 400 and "6000 x 6000 pixels" in r.json()["error"]
    gz = gzip.compress(b"\0" * (40 << 20))  # a gzip bomb: 40 MB of zeros in ~40 kB
    r = client.post("/models/cnn/try", content=gz)
    assert r.status_code == 400 and "decompresses to more than" in r.json()["error"]
    r = client.post("/models/cnn/try", content=b"\0" * (MAX_UPLOAD_BYTES + 1))
    assert r.status_code == 413 and r.json()["error"].startswith("the request is over")
    assert zlib  # the standard library's gzip is what the cap guards


def test_concurrent_requests_load_a_model_once(store):
    app = create_app(str(store[1]))
    body = json.dumps({"instances": real_images(1).tolist()})
    with TestClient(app, raise_server_exceptions=False) as c:
        answers = []
        threads = [threading.Thread(target=lambda: answers.append(
            c.post("/v1/models/rnn:predict", content=body).status_code)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert answers == [200] * 6
        assert app.state.models.loads == 1


def test_a_store_without_runs_answers_from_the_shipped_weights_and_stays_empty(tmp_path):
    db = tmp_path / "empty.db"
    with TestClient(create_app(str(db)), raise_server_exceptions=False) as c:
        answer = c.post("/v1/models/cnn:predict", json={"instances": real_images(2).tolist()})
        assert answer.status_code == 200 and len(answer.json()["predictions"]) == 2
        assert "the model's shipped weights" in c.get("/models/cnn").text
        assert c.get("/runs.json").json() == []  # nothing imported: the server only reads


# -- zoo site -------------------------------------------------------------------------------------


def test_site_pages_link_relatively_and_carry_their_pictures(cli_json, zoo, store, tmp_path):
    home, db, runs = store
    out = tmp_path / "site"
    zoo("site", "-o", out, store=db, code=0)
    index = (out / "index-partial.html").read_text()
    rows = cli_json(db, "leaderboard", "--format", "json", "--include-partial")
    for row in rows:
        assert f'href="runs/{row["best_run"]}.html"' in index
    assert json.loads((out / "index-partial.json").read_text())["rows"] == rows
    for page in out.rglob("*.html"):
        text = page.read_text()
        assert 'href="/' not in text and 'src="/' not in text, page
        assert EVIL not in text, page
    for run in runs:
        assert (out / "runs" / run["run_id"] / "curves.png").is_file()
    assert 'id="try"' not in (out / "models" / "cnn.html").read_text()
    (out / "stray").write_text("")
    zoo("site", "-o", out, store=db, code=0)  # a site is replaced whole
    assert not (out / "stray").exists()
    r = zoo("site", "-o", tmp_path, store=db)
    assert r.exit_code == 2 and "not written by `zoo site`" in r.output


# -- a real zoo serve, a real browser ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(home: Path, *args: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "ZOO_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "zoo_core", "serve", "--port", str(port),
                             *args], env=env, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/runs.json", timeout=5).read()
            return proc, url
        except (urllib.error.URLError, ConnectionError):
            if proc.poll() is not None:
                raise AssertionError(f"zoo serve stopped: {proc.stderr.read()}")
            time.sleep(0.3)
    proc.kill()
    raise AssertionError("zoo serve did not answer within 120 s")


@pytest.fixture(scope="module")
def server(store):
    proc, url = start_serve(store[0])
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("needs Debian's chromium and chromium-driver (make test installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    b = webdriver.Chrome(options=options, service=Service(driver))
    b.set_page_load_timeout(60)
    yield b
    b.quit()


def console_errors(browser) -> list[str]:
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def screenshot(browser, name: str) -> None:
    """Keep the page as docs/NAME.png when ZOO_WEB_SCREENSHOTS=1 (docs/web.md's pictures)."""
    if os.environ.get("ZOO_WEB_SCREENSHOTS"):
        browser.save_screenshot(str(ROOT / "docs" / f"web-{name}.png"))


def test_browser_leaderboard_rows_sort_and_link(cli_json, store, server, browser):
    from selenium.webdriver.common.by import By

    rows = cli_json(store[1], "leaderboard", "--format", "json", "--include-partial")
    browser.get(server + "/?include_partial=1")
    table = browser.find_element(By.CSS_SELECTOR, "table.leaderboard")
    shown = lambda: [tr.get_attribute("data-run")  # noqa: E731
                     for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert shown() == [r["best_run"] for r in rows]
    screenshot(browser, "leaderboard")
    header = table.find_elements(By.CSS_SELECTOR, "thead button.sort")[4]  # test acc
    header.click()
    assert shown() == [r["best_run"] for r in sorted(rows, key=lambda r: r["test_acc_mean"])]
    header.click()
    assert shown() == [r["best_run"] for r in rows]
    points = browser.find_elements(By.CSS_SELECTOR, ".costplot svg a.point")
    assert len(points) == 2 * len(rows)  # a point per row on each panel, each a link
    points[0].click()
    assert "/runs/" in browser.current_url and browser.find_element(By.ID, "status").text
    assert console_errors(browser) == []


def test_browser_model_card_pictures_and_try_it(cli_json, store, server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server + "/models/cnn")
    images = browser.find_elements(By.CSS_SELECTOR, ".pictures img")
    assert len(images) == 3
    for image in images:
        WebDriverWait(browser, 20).until(
            lambda b, i=image: b.execute_script("return arguments[0].complete", i))
        assert browser.execute_script("return arguments[0].naturalWidth", image) > 0
    png = tmp_path / "test-image-0.png"
    Image.fromarray(real_images(1)[0, ..., 0]).save(png)
    expected = cli_json(store[1], "predict", "cnn", png, "--json")
    browser.find_element(By.ID, "try-file").send_keys(str(png))
    first = WebDriverWait(browser, 60).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, "#try-result li"))[0]
    assert first.get_attribute("data-class-id") == \
        str(expected["predictions"][0]["top"][0]["class_id"])
    assert first.text.startswith(expected["predictions"][0]["top"][0]["class"])
    browser.execute_script("document.getElementById('try').scrollIntoView()")
    screenshot(browser, "model")
    assert console_errors(browser) == []


def test_browser_escaped_tag_stays_text(store, server, browser):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    browser.get(server + "/runs")
    assert EVIL in [t.text for t in browser.find_elements(By.CSS_SELECTOR, ".tag")]
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018
    assert console_errors(browser) == []


def test_predict_api_with_a_plain_http_client(server):
    body = json.dumps({"instances": real_images(2).tolist()}).encode()
    request = urllib.request.Request(server + "/v1/models/cnn:predict", data=body,
                                     headers={"Content-Type": "application/json"})
    answer = json.loads(urllib.request.urlopen(request, timeout=60).read())
    assert len(answer["predictions"]) == 2
    assert all(abs(sum(p["probabilities"]) - 1) < 1e-4 for p in answer["predictions"])
    bad = urllib.request.Request(server + "/v1/models/cnn:predict", data=b"[1]")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(bad, timeout=30)
    assert e.value.code == 400 and "error" in json.loads(e.value.read())


def test_browser_opens_the_site_from_file(zoo, store, browser, tmp_path):
    from selenium.webdriver.common.by import By

    out = tmp_path / "site"
    zoo("site", "-o", out, store=store[1], code=0)
    browser.get((out / "index-partial.html").as_uri())
    runs = [tr.get_attribute("data-run")
            for tr in browser.find_elements(By.CSS_SELECTOR, "table.leaderboard tbody tr")]
    assert runs and runs[0] in [r["run_id"] for r in store[2]]
    browser.find_element(By.CSS_SELECTOR, f'a[href="runs/{runs[0]}.html"]').click()
    image = browser.find_element(By.CSS_SELECTOR, ".pictures img")
    assert browser.execute_script("return arguments[0].naturalWidth", image) > 0
    assert console_errors(browser) == []


def test_browser_follows_a_run_while_it_trains(store, server, browser):
    """Last: it adds a run to the module's store."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    home, db, _ = store
    env = {**os.environ, "ZOO_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "zoo_core", "run", "cnn", "--epochs", "3",
                             "--limit", "2000", "--seed", "7"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run_id = wait_for_running(server, proc)
        browser.get(f"{server}/runs/{run_id}")
        browser.execute_script("window.zooStillHere = true")
        assert browser.find_element(By.ID, "status").text == "running"
        WebDriverWait(browser, 240, poll_frequency=0.5).until(
            lambda b: len(b.find_elements(By.CSS_SELECTOR, "#epochs tbody tr")) >= 1)
        assert browser.execute_script("return window.zooStillHere") is True  # no reload
        assert browser.find_element(By.ID, "progress").text.startswith("epoch ")
        screenshot(browser, "run")
        assert console_errors(browser) == []
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def wait_for_running(server: str, proc: subprocess.Popen) -> str:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        running = [r for r in json.loads(urllib.request.urlopen(server + "/runs.json").read())
                   if r["status"] == "running"]
        if running:
            return running[0]["run_id"]
        assert proc.poll() is None, "the training run ended before it was seen running"
        time.sleep(0.5)
    raise AssertionError("the training run did not start within 180 s")


def test_serve_warns_when_not_bound_to_loopback(store):
    proc, url = start_serve(store[0], "--host", "0.0.0.0")
    try:
        with warnings.catch_warnings():
            assert urllib.request.urlopen(url + "/runs.json", timeout=10).status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "warning: listening on 0.0.0.0, not a loopback address" in proc.stderr.read()
