#!/usr/bin/python3
"""The storm's HTML report in a real browser: Debian's chromium, headless, driven by
chromedriver through python3-selenium.

    storm_report_test.py BUILDTRACKD BUILDTRACK OUT_DIR

Starts buildtrackd, storms it open-loop with `buildtrack storm --report`, pausing it for
200 ms mid-run, opens the report from disk and finds its three charts drawn from the
run's figures: throughput and latency over time, and the latency histogram, with nothing
loaded from anywhere else. The report and a screenshot go to OUT_DIR.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

from selenium.webdriver.common.by import By

from browser_support import chromium, free_port, wait_for

BUILDTRACKD = BUILDTRACK = OUT_DIR = None
TOKEN = "storm-report-secret"


class StormReport(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="bt-storm-report-")
        cls.daemon = cls.driver = None
        try:
            cls.run_storm()
            cls.driver = chromium(900, 1500)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def run_storm(cls):
        port = free_port()
        config = os.path.join(cls.tmp, "buildtrack.yaml")
        with open(config, "w") as f:
            f.write(f"server:\n  listen: 127.0.0.1:{port}\nstore:\n  kind: memory\n"
                    f"sources:\n  buildkite:\n    token: {TOKEN}\nlog:\n  level: error\n")
        cls.daemon = subprocess.Popen([BUILDTRACKD, "--config", config])
        wait_for("buildtrackd", lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz").status == 200)
        cls.report = os.path.join(OUT_DIR, "storm-report.html")
        storm = subprocess.Popen(
            [BUILDTRACK, "storm", "--target", f"http://127.0.0.1:{port}", "--buildkite-token", TOKEN,
             "--rate", "3000", "--duration", "3s", "--connections", "16", "--run", "report",
             "--json", "--report", cls.report],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def acknowledged():
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
            m = re.search(r'buildtrack_ack_latency_seconds_count\{source="buildkite"\} (\d+)', text)
            return m and int(m.group(1)) >= 4000
        wait_for("the storm under way", acknowledged)
        cls.daemon.send_signal(signal.SIGSTOP)
        time.sleep(0.2)  # the fault itself: a 200 ms pause the report must show
        cls.daemon.send_signal(signal.SIGCONT)
        out, err = storm.communicate(timeout=120)
        if storm.returncode != 0:
            raise AssertionError(f"buildtrack storm exited with {storm.returncode}: {err}")
        cls.summary = json.loads(out)

    @classmethod
    def tearDownClass(cls):
        if cls.driver:
            cls.driver.quit()
        if cls.daemon:
            cls.daemon.send_signal(signal.SIGCONT)
            cls.daemon.terminate()
            cls.daemon.wait(20)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_the_report_draws_its_charts_from_the_run_and_loads_nothing_else(self):
        d = self.driver
        d.get("file://" + self.report)
        self.assertIn("buildtrack storm", d.title)
        charts = {c.get_attribute("data-chart"): c for c in d.find_elements(By.CSS_SELECTOR, "svg[data-chart]")}
        self.assertEqual(set(charts), {"throughput", "latency", "histogram"})
        for name, chart in charts.items():
            box = chart.rect
            self.assertGreater(box["width"], 300, name)
            self.assertGreater(box["height"], 80, name)

        timeline = self.summary["timeline"]
        throughput = charts["throughput"].find_elements(By.CSS_SELECTOR, "polyline")
        self.assertEqual(len(throughput), 1)
        self.assertEqual(len(throughput[0].get_attribute("points").split()), len(timeline))
        series = {p.get_attribute("data-series"): p for p in charts["latency"].find_elements(By.CSS_SELECTOR, "polyline")}
        self.assertEqual(set(series), {"p50", "p99"})
        # The pause is in the latency line: its highest point is the highest bucket's p99.
        p99_y = [float(pt.split(",")[1]) for pt in series["p99"].get_attribute("points").split()]
        worst = max(range(len(timeline)), key=lambda i: timeline[i]["p99_ms"])
        self.assertEqual(p99_y.index(min(p99_y)), worst)
        self.assertGreaterEqual(timeline[worst]["p99_ms"], 150)

        # Every answer is in one histogram bar; the bars' titles give their counts.
        bars = charts["histogram"].find_elements(By.CSS_SELECTOR, "rect.bar")
        self.assertEqual(len(bars), len(self.summary["histogram"]))
        counted = sum(int(re.search(r": (\d+)$", d.execute_script("return arguments[0].textContent", b)).group(1))
                      for b in bars)
        self.assertEqual(counted, self.summary["requests"])
        tallest = max(bars, key=lambda b: float(b.get_attribute("height")))
        self.assertGreater(float(tallest.get_attribute("height")), 50)

        body = d.find_element(By.TAG_NAME, "body").text
        self.assertIn("open-loop at 3000 requests/s", body)
        self.assertIn("Verified", body)
        # Self-contained: nothing fetched beside the file itself.
        self.assertEqual(d.execute_script("return performance.getEntriesByType('resource').length"), 0)
        d.save_screenshot(os.path.join(OUT_DIR, "storm-report.png"))


if __name__ == "__main__":
    BUILDTRACKD, BUILDTRACK, OUT_DIR = (os.path.abspath(a) for a in sys.argv[1:4])
    os.makedirs(OUT_DIR, exist_ok=True)
    unittest.main(argv=[sys.argv[0], "-v"])
