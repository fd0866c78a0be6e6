"""Open an HTML file in headless Chromium: the DOM after scripts ran, or a screenshot.

Used by the browser test of the HTML report, and by hand::

    python tests/report/headless_browser.py report.html --screenshot report.png
    python tests/report/headless_browser.py report.html            # prints the rendered DOM

The browser is ``$MEMADVISE_BROWSER`` if set, else the first of chromium, chromium-browser,
google-chrome, google-chrome-stable found on PATH (Debian: ``apt-get install chromium``). Every run uses
a fresh profile folder, and the flags below keep it off the network (nothing in the report needs it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)


def find_browser() -> str | None:
    """Path of a Chromium-family browser, or None."""
    override = os.environ.get("MEMADVISE_BROWSER")
    if override:
        return shutil.which(override) or (override if Path(override).is_file() else None)
    for name in BROWSER_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def run_headless(
    browser: str,
    page: Path,
    *,
    screenshot: Path | None = None,
    window: tuple[int, int] = (1280, 1000),
    timeout: float = 60.0,
) -> str:
    """Load ``page``; return the DOM after its scripts ran (``--dump-dom``), or write a PNG screenshot."""
    with tempfile.TemporaryDirectory(prefix="memadvise-chromium-") as profile_dir:
        args = [
            browser,
            *HEADLESS_FLAGS,
            f"--user-data-dir={profile_dir}",
            f"--window-size={window[0]},{window[1]}",
        ]
        args.append(f"--screenshot={screenshot}" if screenshot else "--dump-dom")
        args.append(page.resolve().as_uri())
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.splitlines()[-15:])
        raise RuntimeError(f"{Path(browser).name} exited with {done.returncode}:\n{tail}")
    return done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("page", type=Path, help="the HTML file to open")
    parser.add_argument("--screenshot", type=Path, help="write a PNG here instead of printing the DOM")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1000)
    args = parser.parse_args(argv)
    browser = find_browser()
    if browser is None:
        print("no Chromium found (apt-get install chromium, or set MEMADVISE_BROWSER)", file=sys.stderr)
        return 2
    out = run_headless(browser, args.page, screenshot=args.screenshot, window=(args.width, args.height))
    if not args.screenshot:
        sys.stdout.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
