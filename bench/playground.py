"""
The playground in a real headless Chromium: its weight, and the time from a keystroke in the
next-character prefix to the redrawn chart, measured with the browser's performance clock.

    python -m bench.playground                 # 40 keystrokes
    python -m bench.playground --keys 100

Each keystroke is typed after the previous chart is drawn; the time counts the page's debounce
(120 ms, so that fast typing sends one request, not one per key), the GET /next-char and the redraw.
Needs Chromium (Debian: apt-get install chromium) and the dev extra (playwright).
"""

from __future__ import annotations

import argparse
import statistics

from app.config import STATIC
from bench.fairness import pct
from tests.support.server import serve

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
WORD = "emmanuellekaylanisophiajaxon"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--keys", type=int, default=40, help="keystrokes to time")
    p.add_argument("--chromium", default="/usr/bin/chromium", help="the browser to drive")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    sizes = {f.name: f.stat().st_size for f in sorted(STATIC.iterdir())}
    print("page weight (uncompressed):")
    for name, size in sizes.items():
        print(f"  {name:<16} {size:>7,} bytes")
    print(f"  {'total':<16} {sum(sizes.values()):>7,} bytes\n")
    with (
        serve(env={"NAMEGEN_LOG_LEVEL": "warning"}, args=["--no-access-log"]) as srv,
        sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=args.chromium, args=ARGS)
        page = browser.new_page()
        page.goto(srv.url + "/")
        page.wait_for_selector("body[data-ready=true]")
        # listeners added from the test side: a keydown stamps the time, the page's own
        # chart-drawn event records how long after it the chart was redrawn
        page.evaluate(
            "window.lags = []; document.querySelector('#nc-prefix').addEventListener('keydown', "
            "() => { window.t0 = performance.now(); }); document.addEventListener('chart-drawn', "
            "() => { if (window.t0) { window.lags.push(performance.now() - window.t0); window.t0 = 0; } });"
        )
        box = page.locator("#nc-prefix")
        for i in range(args.keys):
            if i % 8 == 0:
                box.fill("")
            before = page.evaluate("window.lags.length")
            box.press(WORD[i % len(WORD)])
            page.wait_for_selector("#chart .bar")
            while page.evaluate("window.lags.length") == before:
                page.wait_for_timeout(5)
        lags = page.evaluate("window.lags")
        browser.close()
    print(f"keystroke to redrawn chart, {len(lags)} keystrokes (debounce 120 ms included):")
    print(f"  median {statistics.median(lags):.1f} ms, p90 {pct(lags, 0.9):.1f} ms, max {max(lags):.1f} ms")


if __name__ == "__main__":
    main()
