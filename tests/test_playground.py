"""The playground page at `/`, in a real headless Chromium (Debian's package, driven by Playwright
through executable_path) against a real uvicorn process. Skipped, with the reason, only where no
Chromium can be had; .ci/run installs it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import REPO, free_port, serve

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# what a headless Chromium needs on a machine with no network beyond loopback and no GPU
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOT = REPO / "docs" / "playground.png"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve(env={"NAMEGEN_TORCH_THREADS": "1"}) as srv:
        yield srv.url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("no Chromium here (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (dev extra)")
    sync_api.expect.set_options(timeout=30_000)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Page:
    """A fresh browser context and page that records console errors and failed requests."""

    def __init__(self, browser: Any, width: int = 1100, height: int = 900, **context: Any) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height}, **context)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on(
            "console",
            lambda m: (
                self.problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url}"))
        self.page.on(
            "response", lambda r: self.problems.append(f"{r.status}: {r.url}") if r.status >= 400 else None
        )

    def open(self, url: str) -> Any:
        self.page.goto(url)
        self.page.wait_for_selector("body[data-ready=true]", timeout=30_000)
        return self.page

    def names(self) -> list[str]:
        return [str(n) for n in self.page.locator("#names button.name").all_inner_texts()]


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    pages: list[Page] = []

    def make(**kwargs: Any) -> Page:
        pages.append(Page(browser, **kwargs))
        return pages[-1]

    yield make
    for p in pages:
        p.context.close()


def expect(locator: Any) -> Any:
    """Playwright's auto-retrying assertions: they query the page with selectors, not with eval,
    which the page's Content-Security-Policy forbids (so wait_for_function cannot be used)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def api_names(server: str, **params: Any) -> list[str]:
    return [str(n) for n in httpx.get(f"{server}/generate", params=params).json()["names"]]


def test_page_loads_with_no_errors_and_every_model(server: str, open_page: Any) -> None:
    p = open_page()
    response = p.page.goto(server + "/")
    assert response.status == 200 and "default-src 'self'" in response.headers["content-security-policy"]
    p.page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    models = httpx.get(f"{server}/models").json()["data"]
    options = p.page.locator("#model option").evaluate_all("els => els.map(e => e.value)")
    assert options == [m["name"] for m in models]
    fields = p.page.locator("#generate-fields [data-field]").evaluate_all("els => els.map(e => e.name)")
    assert fields == [
        "n",
        "temperature",
        "top_k",
        "top_p",
        "seed",
        "prefix",
        "min_length",
        "max_length",
        "unique",
        "novel",
        "safe",
        "lowercase",
        "full",
        "family_model",
        "family_prefix",
    ]  # fmt: skip  (from /openapi.json, in its order)
    assert p.page.locator("#f-n").get_attribute("max") == "1000"  # the service's own limit
    assert (
        "1.9851" in p.page.locator("#model-about").inner_text()
        or "nats/char" in p.page.locator("#model-about").inner_text()
    )
    assert p.problems == []


@pytest.mark.parametrize(
    ("controls", "params", "each", "prefixed"),
    [
        # names, each scored; Enter in a field generates
        ({"f-n": "6", "f-prefix": "ka", "f-seed": "11"},
         {"model": "names", "n": 6, "prefix": "ka", "seed": 11}, "nats/char", r"^Ka"),
        # full names: a score for the given name and one for the family name, each by its model
        ({"model": "names-female", "f-n": "5", "f-seed": "4", "f-full": True, "f-family_prefix": "mc"},
         {"model": "names-female", "n": 5, "seed": 4, "full": True, "family_prefix": "mc"}, " + ", r" Mc"),
    ],
    ids=["names", "full-names"],
)  # fmt: skip
def test_generating_with_a_seed_shows_the_apis_names_with_scores(
    server: str,
    open_page: Any,
    controls: dict[str, str | bool],
    params: dict[str, Any],
    each: str,
    prefixed: str,
) -> None:
    p = open_page()
    page = p.open(server + "/")
    for control, value in controls.items():
        if value is True:
            page.check(f"#{control}")
        elif control == "model":
            page.select_option("#model", str(value))
        else:
            page.fill(f"#{control}", str(value))
    page.press("#f-seed", "Enter")
    expect(page.locator("#names .meta")).to_have_count(params["n"])
    for meta in page.locator("#names .meta").all():
        expect(meta).to_contain_text(each)
    assert p.names() == httpx.get(f"{server}/generate", params=params).json()["names"]
    assert all(re.search(prefixed, name) for name in p.names())  # the prefix field reached the API
    assert p.problems == []


def test_typing_a_prefix_redraws_the_chart_and_a_bar_extends_it(server: str, open_page: Any) -> None:
    p = open_page()
    page = p.open(server + "/")
    page.locator("#nc-prefix").press_sequentially("emm", delay=30)
    expect(page.locator("#nc-status")).to_contain_text('"emm"')
    expected = httpx.get(f"{server}/next-char", params={"prefix": "emm"}).json()["distribution"]
    bars = page.locator("#chart .bar").evaluate_all(
        "els => els.map(e => [e.dataset.char, Number(e.dataset.prob)])"
    )
    assert [c for c, _ in bars] == [d["char"] for d in expected]
    assert all(abs(q - d["prob"]) < 1e-9 for (_, q), d in zip(bars, expected, strict=True))
    rows = page.locator("#nc-table tbody tr").count()
    assert rows == len(expected)  # the text alternative, always there
    page.locator('#chart .bar[data-char="a"]').click()
    expect(page.locator("#nc-status")).to_contain_text('"emma"')
    assert page.input_value("#nc-prefix") == "emma"
    after = httpx.get(f"{server}/next-char", params={"prefix": "emma"}).json()["distribution"]
    assert page.locator("#chart .bar").first.get_attribute("data-char") == after[0]["char"]
    assert p.problems == []


def test_the_permalink_and_the_copied_curl_command_give_the_same_names(server: str, open_page: Any) -> None:
    p = open_page(permissions=["clipboard-read", "clipboard-write"])
    page = p.open(server + "/")
    page.fill("#f-n", "5")
    page.check("#f-novel")
    page.fill("#f-temperature", "0.8")
    page.click("#new-seed")
    page.click("button[type=submit]")
    expect(page.locator("#names button")).to_have_count(5)
    names = p.names()
    link = page.url
    assert "novel=true" in link and "temperature=0.8" in link and "seed=" in link
    fresh = open_page()
    fresh.open(link)  # a link opened in a new page generates by itself, once loaded
    expect(fresh.page.locator("#names button")).to_have_count(5)
    assert fresh.names() == names
    page.click("#copy-curl")
    command = page.evaluate("navigator.clipboard.readText()")
    assert command == page.locator("#curl").inner_text() and command.startswith("curl -s '")
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout)["names"] == names
    assert p.problems == [] and fresh.problems == []


def test_a_bad_value_shows_the_apis_message_and_an_unreachable_service_says_so(
    server: str, open_page: Any
) -> None:
    p = open_page()
    page = p.open(server + "/")
    page.fill("#f-prefix", "jo3")
    page.press("#f-prefix", "Enter")
    expect(page.locator("#generate-status.error")).to_be_visible()
    message = page.locator("#generate-status").inner_text()
    assert message.startswith("422: prefix: prefix has characters outside the alphabet of model 'names'")
    page.route("**/generate?*", lambda route: route.abort())
    page.fill("#f-prefix", "jo")
    page.press("#f-prefix", "Enter")
    expect(page.locator("#generate-status")).to_contain_text("cannot be reached")
    expected = ("status of 422", "422: ", "ERR_FAILED", "failed: ")  # the bad value, the cut connection
    p.problems = [x for x in p.problems if not any(e in x for e in expected)]
    assert p.problems == []


def test_scores_are_listed_and_sortable(server: str, open_page: Any) -> None:
    p = open_page()
    page = p.open(server + "/")
    page.fill("#score-names", "emma\nxqzv\nkaylani")
    page.click("#score-form button[type=submit]")
    expect(page.locator("#score-table tbody tr")).to_have_count(3)
    page.click('#score-table th[data-key="nats_per_char"] button')
    first = page.locator("#score-table tbody tr").first.locator("td").first.inner_text()
    assert first == "kaylani"  # the most name-like first
    assert page.locator('#score-table th[data-key="nats_per_char"]').get_attribute("aria-sort") == "ascending"
    assert p.problems == []


def test_the_page_works_360_pixels_wide(server: str, open_page: Any) -> None:
    p = open_page(width=360, height=800)
    page = p.open(server + "/?n=3&seed=2")
    expect(page.locator("#names button")).to_have_count(3)
    assert p.names() == api_names(server, n=3, seed=2)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360  # nothing wider than the screen
    assert p.problems == []


# a web app's script on another origin: POST JSON (preflighted) and GET, reading X-Request-ID
CROSS_ORIGIN_APP = """
(async () => {
  const post = await fetch("API/generate", {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({n: 3, seed: 5}),
  });
  const get = await fetch("API/next-char?prefix=ka&top_k=2");
  window.result = {
    names: (await post.json()).names, postId: post.headers.get("X-Request-ID"),
    chars: (await get.json()).distribution.map(d => d.char), getId: get.headers.get("X-Request-ID"),
  };
})().catch(e => { window.result = {error: String(e)}; });
"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def web_app(folder: Path, script: str, module: bool) -> Iterator[str]:
    """A page whose script is `script` (a module script, or a classic one), served from `folder`
    on a second loopback origin while the block runs; yields its URL."""
    kind = ' type="module"' if module else ""
    (folder / "app.html").write_text(
        f'<!doctype html><html><body><script{kind} src="app.js"></script></body></html>'
    )
    (folder / "favicon.ico").write_bytes(b"")  # what the browser asks this origin for by itself
    (folder / "app.js").write_text(script)
    port = free_port()
    httpd = ThreadingHTTPServer(("127.0.0.1", port), partial(_Quiet, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}/app.html"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_web_app_on_another_origin_calls_the_api(server: str, open_page: Any, tmp_path: Path) -> None:
    """CORS: a page served from a second loopback origin POSTs JSON (preflighted) and GETs, and
    reads the names and the X-Request-ID header."""
    with web_app(tmp_path, CROSS_ORIGIN_APP.replace("API", server), module=False) as url:
        p = open_page()
        p.page.goto(url)
        result = p.page.wait_for_function("window.result").json_value()
    assert "error" not in result, result
    assert result["names"] == api_names(server, n=3, seed=5)
    assert len(result["postId"]) == 32 and len(result["getId"]) == 32 and len(result["chars"]) == 2
    assert p.problems == []


def documented_fetch_example() -> str:
    """The JavaScript example of docs/api.md (its ```js block)."""
    text = (REPO / "docs" / "api.md").read_text()
    return text.split("```js\n", 1)[1].split("```", 1)[0]


def test_the_documented_fetch_example_works_from_another_origin(
    server: str, open_page: Any, tmp_path: Path
) -> None:
    """docs/api.md's fetch example, as a web app's module script on a second origin: it gets full
    names, and a bad request raises the API's message with the field and the request id."""
    script = documented_fetch_example().replace("http://localhost:8000", server)
    script += """
window.result = { full: full_names.map((p) => `${p.given} ${p.family}`) };
try { await names(3, { prefix: "jo3" }); } catch (e) { window.result.error = e.message; }
"""
    with web_app(tmp_path, script, module=True) as url:
        p = open_page()
        p.page.goto(url)
        p.page.wait_for_function("window.result && window.result.error")
        result = p.page.evaluate("window.result")
    api = httpx.post(
        f"{server}/generate", json={"n": 3, "full": True, "model": "names-female", "seed": 4}
    ).json()
    assert result["full"] == api["names"]
    assert (
        result["error"].startswith("422: prefix: prefix has characters outside")
        and "(request " in result["error"]
    )
    assert [m for m in p.problems if "422" not in m] == []  # the browser logs the refused request


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_accessibility_violations(server: str, open_page: Any, scheme: str) -> None:
    axe_module = pytest.importorskip(
        "axe_playwright_python.sync_playwright", reason="axe-playwright-python (dev extra)"
    )
    p = open_page(color_scheme=scheme)
    page = p.open(server + "/?n=4&seed=3")
    expect(page.locator("#names .meta")).to_have_count(4)
    page.locator("#nc-prefix").press_sequentially("jo", delay=30)
    expect(page.locator("#nc-status")).to_contain_text('"jo"')
    page.click("#score-form button[type=submit]")
    expect(page.locator("#score-table tbody tr")).to_have_count(3)
    results = axe_module.Axe().run(page)
    serious = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert serious == [], json.dumps([(v["id"], v["impact"], len(v["nodes"])) for v in serious])
    if scheme == "light":  # the README's screenshot, made by this run
        page.set_viewport_size({"width": 1100, "height": 900})
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(SCREENSHOT), full_page=False)
    assert p.problems == []


def test_without_the_playground_the_root_is_404() -> None:
    with serve(env={"NAMEGEN_PLAYGROUND": "false"}) as srv:
        assert httpx.get(f"{srv.url}/").status_code == 404
        assert httpx.get(f"{srv.url}/static/playground.js").status_code == 404
        assert httpx.get(f"{srv.url}/generate", params={"n": 1}).status_code == 200


def test_condition_controls_follow_the_models_conditions(server: str, open_page: Any) -> None:
    models = httpx.get(f"{server}/models").json()["data"]
    conditioned = next(m for m in models if m["conditions"])  # names-era
    p = open_page()
    page = p.open(server + "/")
    expect(page.locator("#condition-fields [data-field]")).to_have_count(0)  # names: none
    page.select_option("#model", conditioned["name"])
    sex = conditioned["conditions"]["fields"]["sex"]
    expect(page.locator("#c-sex option")).to_have_count(1 + len(sex["values"]) + len(sex["pairs"]))
    assert page.locator("#c-sex option").all_inner_texts() == ["any", "F", "M", "neutral"]
    assert page.locator("#c-year").get_attribute("max") == str(
        conditioned["conditions"]["fields"]["year"]["max"]
    )
    page.select_option("#c-sex", "F")
    page.fill("#c-year", "1925")
    page.fill("#f-n", "5")
    page.fill("#f-seed", "1")
    page.press("#f-seed", "Enter")
    expect(page.locator("#names button")).to_have_count(5)
    params = {"model": conditioned["name"], "n": 5, "seed": 1, "sex": "F", "year": 1925}
    assert p.names() == api_names(server, **params)
    assert "sex=F" in page.url and "year=1925" in page.url
    fresh = open_page()
    fresh.open(page.url)  # the permalink keeps the condition
    expect(fresh.page.locator("#names button")).to_have_count(5)
    assert fresh.names() == p.names()
    page.select_option("#c-sex", "neutral")  # gender-neutral names, offered as a value of sex
    neutral = api_names(server, **{**params, "sex": "neutral"})
    assert neutral != fresh.names()
    page.press("#f-seed", "Enter")
    expect(page.locator("#names button")).to_have_text(neutral)
    page.select_option("#model", "names")
    expect(page.locator("#condition-fields [data-field]")).to_have_count(0)
    assert p.problems == [] and fresh.problems == []


@pytest.mark.parametrize(("page_path", "rendered"), [("/docs", ".opblock"), ("/redoc", "[role=menuitem]")])
def test_the_api_docs_render_from_this_origin_with_no_csp_violation(
    server: str, open_page: Any, page_path: str, rendered: str
) -> None:
    """Swagger UI and ReDoc, from the package's files on this origin, under the page's CSP: all
    that loads comes from this origin, and nothing fails. (ReDoc's footer shows Redocly's logo
    from their CDN: the CSP refuses it, and ReDoc then leaves it out.)"""
    p = open_page()
    loaded: list[str] = []
    p.page.on("response", lambda r: loaded.append(r.url))
    response = p.page.goto(server + page_path)
    assert response.status == 200 and "script-src 'self'" in response.headers["content-security-policy"]
    expect(p.page.locator(rendered).first).to_be_visible()
    assert "/generate" in p.page.content()  # the document's operations are shown
    assert loaded and all(u.startswith((server, "blob:")) for u in loaded), loaded
    logo = "https://cdn.redoc.ly/redoc/logo-mini.svg"
    assert [m for m in p.problems if logo not in m] == [], p.problems
    assert all(
        "violates the following Content Security Policy" in m or m == f"failed: {logo}" for m in p.problems
    )
