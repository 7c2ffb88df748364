"""Screenshots of an atlas report for the README: `.venv/bin/python docs/screenshots.py lmech-report docs`
(the scorecard of the newest report and the catapult page; needs playwright and /usr/bin/chromium)."""
import sys, threading
from playwright.sync_api import sync_playwright
from lmech.report.serve import make_server

root, out = sys.argv[1], sys.argv[2]
server = make_server(root, "127.0.0.1", 0, quiet=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = f"http://127.0.0.1:{server.server_address[1]}/"
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(base + "index.html", wait_until="load")
    table = page.locator("table.scorecard")
    table.screenshot(path=f"{out}/scorecard.png")
    page.goto(base + "catapult.html", wait_until="load")
    page.locator("section").first.screenshot(path=f"{out}/phenomenon-catapult.png")
    browser.close()
server.shutdown()
