"""The dashboard in a real browser (Playwright driving Debian's Chromium) against a real
`plx server` running a real sweep on the local runtime.

Screenshots of each main view go to $PLX_UI_SCREENSHOTS (default: a temporary folder), printed
at the end of the test: look at them.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tarfile
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ADMIN

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
UI_INDEX = Path(__file__).resolve().parents[2] / "app" / "ui_dist" / "index.html"

TRAIN = """
import json, os, sys, time, urllib.request
lr = float(sys.argv[1])
env = os.environ
url = (f"{env['PLX_API_URL']}/api/v1/{env['PLX_USERNAME']}/{env['PLX_PROJECT']}"
       f"/experiments/{env['PLX_EXPERIMENT_ID']}/metrics")
loss = 1.0
for step in range(int(sys.argv[2])):
    loss = loss * (1 - lr) + 0.01
    body = json.dumps({"values": {"loss": loss, "step": step}}).encode()
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Authorization": f"token {env['PLX_TOKEN']}", "Content-Type": "application/json"})
    urllib.request.urlopen(req).close()
    time.sleep(float(sys.argv[3]))
"""

SWEEP = """
version: 1
kind: group
hptuning:
  concurrency: 2
  matrix: {lr: {values: [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]}, units: {values: [8]}}
run: {cmd: "python3 train.py {{ lr }} 20 0.3"}
"""

EARLY = """
version: 1
kind: group
hptuning:
  concurrency: 1
  matrix: {lr: {values: [0.5, 0.6, 0.7]}}
  early_stopping: [{metric: loss, value: 0.3, optimization: minimize}]
run: {cmd: "python3 train.py {{ lr }} 5 0.05"}
"""


def _code() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = TRAIN.encode()
        info = tarfile.TarInfo("train.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _wait(check, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("PLX_UI_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_dashboard_views_in_a_real_browser(server, screenshots: Path) -> None:
    if not Path(CHROMIUM).exists() or not UI_INDEX.exists():
        message = f"needs {CHROMIUM} and a built UI ({UI_INDEX}): `make test` installs both"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import expect, sync_playwright

    srv = server()
    api = srv.client()
    created = api.post("/api/v1/projects", json={"name": "demo", "is_public": False})
    assert created.status_code == 201
    files = {"repo": ("code.tar.gz", _code(), "application/gzip")}
    assert api.put("/api/v1/admin/demo/repo/upload", files=files).status_code in (200, 201)
    tracked = api.post(
        "/api/v1/admin/demo/experiments",
        json={"config": {"version": 1, "kind": "experiment", "declarations": {"lr": 0.01}}},
    ).json()["id"]
    points = [{"values": {"loss": 1 / (i + 1), "acc": i / 200, "step": i}} for i in range(200)]
    posted = api.post(f"/api/v1/admin/demo/experiments/{tracked}/metrics", json=points)
    assert posted.status_code == 201
    early = api.post("/api/v1/admin/demo/groups", json={"content": EARLY}).json()["id"]
    sweep = api.post("/api/v1/admin/demo/groups", json={"content": SWEEP}).json()["id"]

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        console_errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
        page.on("pageerror", lambda e: console_errors.append(str(e)))

        # Sign in (a deep link survives the round trip through the login page).
        page.goto(f"{srv.url}/projects/admin/demo")
        expect(page).to_have_url(re.compile(r"/login\?next="))
        page.fill("input[name=username]", ADMIN[0])
        page.fill("input[name=password]", "wrong-password")
        page.click("button[type=submit]")
        expect(page.get_by_role("alert")).to_contain_text("Wrong username or password")
        page.screenshot(path=screenshots / "01-login-error.png")
        page.fill("input[name=password]", ADMIN[1])
        page.click("button[type=submit]")
        expect(page).to_have_url(f"{srv.url}/projects/admin/demo")
        assert "token" not in page.url

        # Projects.
        page.goto(f"{srv.url}/")
        expect(page.get_by_test_id("projects")).to_contain_text("admin.demo")
        page.screenshot(path=screenshots / "02-projects.png")

        # Experiments table: a query filters it, a bad query shows the server's message.
        page.get_by_role("link", name="admin.demo").click()
        table = page.get_by_test_id("experiments")
        expect(table).to_contain_text(f"admin.demo.{tracked}")
        group_url = f"/api/v1/admin/demo/groups/{sweep}"
        _wait(lambda: api.get(group_url).json()["num_succeeded_experiments"] >= 1,
              90, "a finished sweep experiment")
        page.get_by_label("query").fill("metric.loss:<0.2")
        page.get_by_role("button", name="Filter").click()
        expect(page).to_have_url(re.compile(r"query=metric\.loss"))
        expect(table).to_contain_text(f"admin.demo.{tracked}")
        count_text = page.get_by_test_id("count").inner_text()
        page.screenshot(path=screenshots / "03-experiments-filtered.png")
        page.get_by_label("query").fill("nosuchfield:1")
        page.get_by_role("button", name="Filter").click()
        expect(page.get_by_role("alert")).to_contain_text("nosuchfield")
        page.screenshot(path=screenshots / "04-experiments-bad-query.png")
        assert count_text.split()[0].isdigit()

        # The running sweep: its counts change while we look.
        page.goto(f"{srv.url}/projects/admin/demo/groups/{sweep}")
        counts = page.get_by_test_id("counts")
        expect(counts).to_be_visible()
        first = counts.inner_text()
        _wait(lambda: counts.inner_text() != first, 60, "the group's counts to change")
        expect(page.get_by_test_id("parallel").locator("canvas")).to_have_count(1)
        expect(page.get_by_test_id("best-so-far").locator("canvas")).to_have_count(1)
        page.screenshot(path=screenshots / "05-group-running.png", full_page=True)

        # Stop it from the page.
        page.get_by_role("button", name="Stop sweep").click()
        expect(page.locator("h1 .status")).to_have_text(re.compile("stopp"), timeout=30_000)
        page.screenshot(path=screenshots / "06-group-stopped.png", full_page=True)

        # The early-stopped sweep's decision ledger says why.
        _wait(lambda: api.get(f"/api/v1/admin/demo/groups/{early}").json()["last_status"]
              in ("stopped", "succeeded"), 90, "the early-stopping group to end")
        page.goto(f"{srv.url}/projects/admin/demo/groups/{early}")
        ledger = page.get_by_test_id("ledger")
        expect(ledger).to_contain_text("early_stopping")
        expect(ledger).to_contain_text("loss")
        page.screenshot(path=screenshots / "07-decision-ledger.png", full_page=True)

        # An experiment: its metric chart has points, its timeline its statuses.
        page.goto(f"{srv.url}/projects/admin/demo/experiments/{tracked}")
        expect(page.get_by_test_id("chart-loss").locator("canvas")).to_have_count(1)
        expect(page.get_by_test_id("chart-acc").locator("canvas")).to_have_count(1)
        expect(page.get_by_test_id("timeline")).to_contain_text("created")
        page.screenshot(path=screenshots / "08-experiment.png", full_page=True)

        # Compare two experiments.
        other = api.get(f"/api/v1/admin/demo/groups/{sweep}/points").json()["results"][0]["id"]
        page.goto(f"{srv.url}/projects/admin/demo/compare?ids={tracked},{other}")
        expect(page.get_by_test_id("compare-table")).to_contain_text("lr")
        expect(page.get_by_test_id("chart-loss").locator("canvas")).to_have_count(1)
        page.screenshot(path=screenshots / "09-compare.png", full_page=True)

        # A project that is not there: a readable message, not a blank page.
        page.goto(f"{srv.url}/projects/admin/nothing-here")
        expect(page.get_by_role("alert").first).to_contain_text("Not found")
        page.screenshot(path=screenshots / "10-not-found.png")

        # Sign out: back to the login page, the token gone.
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(re.compile("/login"))
        assert page.evaluate("sessionStorage.getItem('plx.token')") is None
        browser.close()

    csp = [e for e in console_errors if "Content Security Policy" in e]
    assert not csp, csp
    print(f"\nDashboard screenshots: {screenshots}")
    assert httpx.get(f"{srv.url}/", timeout=5).headers["content-security-policy"]
