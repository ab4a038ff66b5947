#!/usr/bin/env python3
"""Drives the quote page in headless Chromium (Debian's chromium and chromium-driver, Python selenium), as a
customer would, and prints what the page showed as one JSON object:

    page-browser.py --url http://127.0.0.1:PORT/ [--screenshots DIR] MODEL [MODEL ...] [--not-a-model FILE]

For each model: chooses it in the file input, checks that the 3D view's canvas is not blank (a screenshot of it
has more than one colour), submits, waits for the final status, and reads every alloy's total from the page. The
browser console's errors are collected over the whole run. Exit 0 when the run went through (the caller judges
what was found); 2 when the browser could not be driven.
"""

import argparse
import json
import os
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait


def canvas_colours(driver):
    """Distinct colours in a screenshot of the 3D view (1 when it is blank)."""
    png = driver.find_element(By.CSS_SELECTOR, "#viewer canvas").screenshot_as_png
    # No PNG decoder needed: the browser counts the colours of the canvas it drew (kept with
    # preserveDrawingBuffer), and the screenshot's size says the element was captured.
    return driver.execute_script(
        """
        const c = document.querySelector('#viewer canvas');
        const copy = document.createElement('canvas');
        copy.width = c.width; copy.height = c.height;
        const ctx = copy.getContext('2d');
        ctx.drawImage(c, 0, 0);
        const d = ctx.getImageData(0, 0, copy.width, copy.height).data;
        const seen = new Set();
        for (let i = 0; i < d.length && seen.size < 1000; i += 16) seen.add((d[i] << 16) | (d[i+1] << 8) | d[i+2]);
        return seen.size;
        """
    ), len(png)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--screenshots", default=None)
    p.add_argument("--not-a-model", default=None)
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--probe", action="store_true", help="only open the page and report what it says")
    p.add_argument("models", nargs="*")
    args = p.parse_args()

    options = Options()
    for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1500",
                 "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--disable-gpu-sandbox"]:
        options.add_argument(flag)
    options.binary_location = "/usr/bin/chromium"
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    except Exception as e:  # the browser itself could not start
        print(json.dumps({"error": f"cannot start chromium: {e}"}))
        return 2
    out = {"models": [], "console": []}
    try:
        started = time.monotonic()
        driver.get(args.url)
        wait = WebDriverWait(driver, args.timeout)
        if args.probe:
            # The page either becomes usable or says why not.
            wait.until(
                lambda d: d.find_element(By.ID, "problem").text != ""
                or d.find_element(By.ID, "submit").is_enabled()
            )
            out["problem"] = driver.find_element(By.ID, "problem").text
            out["usable"] = driver.find_element(By.ID, "submit").is_enabled()
            out["console"] = [{"level": e["level"], "message": e["message"]} for e in driver.get_log("browser")]
            print(json.dumps(out))
            return 0
        wait.until(EC.element_to_be_clickable((By.ID, "submit")))
        out["load_ms"] = round((time.monotonic() - started) * 1000)
        out["title"] = driver.title
        if args.screenshots:
            driver.save_screenshot(f"{args.screenshots}/page-before.png")
        for model in args.models:
            driver.find_element(By.ID, "model").send_keys(model)
            # The view draws the model from the file itself, before anything is sent; data-shown names the file
            # once it is drawn (empty when it could not be).
            name = os.path.basename(model)
            wait.until(lambda d: d.find_element(By.ID, "viewer").get_attribute("data-shown") is not None)
            shown = driver.find_element(By.ID, "viewer").get_attribute("data-shown")
            time.sleep(0.5)
            colours, png_bytes = canvas_colours(driver)
            before = driver.find_element(By.ID, "status").get_attribute("data-job")
            driver.find_element(By.ID, "submit").click()
            wait.until(
                lambda d: d.find_element(By.ID, "status").get_attribute("data-job") not in (None, before)
                and d.find_element(By.ID, "status").get_attribute("data-status") in ("done", "failed")
            )
            status = driver.find_element(By.ID, "status")
            found = {
                "file": model,
                "job_id": status.get_attribute("data-job"),
                "status": status.get_attribute("data-status"),
                "canvas_colours": colours,
                "drawn": shown == name,
                "stages": [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#stages li")],
                "totals": {
                    card.get_attribute("data-alloy"): {
                        "total": card.find_element(By.CSS_SELECTOR, ".total").get_attribute("data-total"),
                        "shown": card.find_element(By.CSS_SELECTOR, ".total").text,
                        "castable": card.find_element(By.CSS_SELECTOR, "[data-castable]").get_attribute("data-castable"),
                    }
                    for card in driver.find_elements(By.CSS_SELECTOR, "#quotes .quote")
                },
                "problem": driver.find_element(By.ID, "problem").text,
            }
            out["models"].append(found)
            if args.screenshots and len(out["models"]) == 1:
                height = driver.execute_script("return document.documentElement.scrollHeight;")
                driver.set_window_size(1100, height + 120)
                time.sleep(0.5)
                driver.save_screenshot(f"{args.screenshots}/page-after.png")
                driver.set_window_size(1100, 1500)
        # The console up to here: the page's own errors, if any (the refusal below makes Chromium log its 415).
        out["console"] = [{"level": e["level"], "message": e["message"]} for e in driver.get_log("browser")]
        # A phone-sized window: nothing wider than the screen.
        driver.set_window_size(390, 844)
        time.sleep(0.3)
        out["phone_overflow_px"] = driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;"
        )
        out["load_ms_navigation"] = driver.execute_script(
            "const t = performance.getEntriesByType('navigation')[0]; return Math.round(t.loadEventEnd - t.startTime);"
        )
        if args.not_a_model:
            driver.find_element(By.ID, "model").send_keys(args.not_a_model)
            driver.find_element(By.ID, "submit").click()
            wait.until(lambda d: d.find_element(By.ID, "problem").text != "")
            out["not_a_model"] = driver.find_element(By.ID, "problem").text
            out["console_after_refusal"] = [
                {"level": e["level"], "message": e["message"]} for e in driver.get_log("browser")
            ]
    finally:
        driver.quit()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
