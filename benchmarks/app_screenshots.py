"""README screenshots of the dashboard's main pages, taken in headless Chromium through the browser
harness the browser tests use (tests/browser_harness.py).

    python benchmarks/app_screenshots.py [--out docs/screenshots] [--sae-root saes]

`interp app --no-window` on the shipped SAEs with a fresh INTERP_HOME; each page is opened, waited
for, and captured at 1400 x 900 (the window size `interp app` opens). The Circuits page shows the
shipped IOI benchmark result (benchmarks/circuits/results/embedded__ioi.json). Nothing else is written.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # tests/browser_harness.py

SAVED_CIRCUIT = ROOT / "benchmarks" / "circuits" / "results" / "embedded__ioi.json"
PAGES = [("home", "", None), ("features", "features", None), ("prompt_lab", "prompt_lab", None),
         ("circuits", "circuits", "circuits"), ("unlearning", "unlearning", None), ("moex", "moex", None)]


def _load_circuit(page) -> None:
    from browser_harness import wait_idle

    page.get_by_text("Load saved result").click()
    wait_idle(page)
    box = page.get_by_label("Result JSON path")
    box.fill(str(SAVED_CIRCUIT))
    box.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Load").click()
    page.wait_for_selector("text=ioi on embedded", timeout=120_000)
    wait_idle(page)


def main() -> None:
    from playwright.sync_api import sync_playwright

    from browser_harness import launch_chromium, running_app, wait_idle

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    ap.add_argument("--sae-root", default=str(ROOT / "saes"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = {"INTERP_SAE_ROOT": args.sae_root, "INTERP_HOME": tempfile.mkdtemp(prefix="shots_home_")}
    with running_app(env) as (url, _), sync_playwright() as p:
        b = launch_chromium(p)
        page = b.new_page(viewport={"width": 1400, "height": 900})
        for name, path, special in PAGES:
            page.goto(f"{url}/{path}", wait_until="domcontentloaded")
            page.wait_for_selector("h1", timeout=120_000)
            wait_idle(page, quiet_ms=2000, timeout_s=300)
            if special == "circuits" and SAVED_CIRCUIT.exists():
                _load_circuit(page)
                page.get_by_role("tab", name="Circuit graph").click()
                wait_idle(page)
            # charts draw after the script run ends (Vega loads in the browser): wait for them to stop being placeholders
            page.wait_for_timeout(1500)
            page.wait_for_function("""() => Array.from(document.querySelectorAll('[data-testid="stVegaLiteChart"]'))
                                        .filter(e => e.offsetParent !== null).every(e => e.querySelector('canvas, svg.marks'))""",
                                   timeout=120_000)  # charts in hidden tabs are not drawn until shown
            page.wait_for_timeout(1000)
            page.screenshot(path=str(out / f"{name}.png"))
            print("wrote", out / f"{name}.png", flush=True)
        b.close()


if __name__ == "__main__":
    main()
