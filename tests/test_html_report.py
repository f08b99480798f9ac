"""doctor --format html: one self-contained page, loaded in a real headless Chromium (Debian's `chromium`).

The page must load with no console message at all (it has no script, and its
Content-Security-Policy forbids loading anything, so anything that tries shows
up as a console error), the chart must be in the DOM, and the screenshot must
show the chart's colours: the pixels are read back from the PNG Chromium wrote.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from stuckgen.cli import app
from stuckgen.reference.seed import seed

runner = CliRunner()
pytestmark = pytest.mark.slow


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        pytest.fail("chromium is not installed (apt-get install chromium; .ci/run installs it)", pytrace=False)
    return exe


def run_chromium(page: Path, *args: str, width: int = 1000, height: int = 1400) -> subprocess.CompletedProcess:
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
           "--enable-logging=stderr", "--v=0", f"--window-size={width},{height}", *args, page.as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line]


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and rows of RGBA/RGB pixels of a non-interlaced 8-bit PNG (what Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _c, _f, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and interlace == 0 and ctype in (2, 6)
            bpp = 4 if ctype == 6 else 3
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line) if bpp == 3 else bytes(x for j in range(0, stride, 4) for x in line[j:j + 3]))
        prev = line
    return w, h, rows


def colour_counts(path: Path) -> Counter:
    _w, _h, rows = png_pixels(path)
    out: Counter = Counter()
    for row in rows:
        for i in range(0, len(row), 3):
            out["#%02X%02X%02X" % (row[i], row[i + 1], row[i + 2])] += 1
    return out


@pytest.fixture
def incident_db(db):
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"completed": 30, "running": 2, "trigger-failed": 8, "stalled": 3}, seed=5)
        # the app gave up on some rows after three 401s: failed at the trigger
        conn.execute("""UPDATE generations SET status = 'failed', parameters = parameters || jsonb_build_object(
                          'error', 'Failed to trigger processing: 401 Unauthorized')
                        WHERE id IN (SELECT id FROM generations WHERE status = 'completed'
                                     ORDER BY created_at DESC LIMIT 6)""")
    return db


def test_doctor_html_is_one_self_contained_page_that_chromium_draws(incident_db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    page = tmp_path / "incident.html"
    r = runner.invoke(app, ["doctor", "-d", incident_db, "--no-probe", "--format", "html", "--output", str(page)])
    assert r.exit_code == 1, r.output
    html = page.read_text()
    # self-contained: no script, nothing loaded from elsewhere (the SVG namespace is a name, not a load)
    assert "<script" not in html.lower()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html, re.I)
    assert not re.search(r"url\(", html) and "@import" not in html
    assert "Content-Security-Policy" in html and "default-src 'none'" in html

    dom = run_chromium(page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_messages(dom.stderr) == []
    assert "<svg" in dom.stdout and 'class="marker onset"' in dom.stdout
    bars = re.findall(r'<rect class="bar (\w+)"[^>]*data-value="(\d+)"', dom.stdout)
    drawn = Counter()
    for kind, v in bars:
        drawn[kind] += int(v)
    assert drawn["stuck"] == 11 and drawn["failed_at_trigger"] == 6 and drawn["completed"] == 24
    assert "stuck-trigger-failed" in dom.stdout and dom.stdout.count('data-label="id"') == 11

    shot = tmp_path / "shot.png"
    s = run_chromium(page, f"--screenshot={shot}", "--hide-scrollbars")
    assert s.returncode == 0 and shot.is_file(), s.stderr[-2000:]
    colours = colour_counts(shot)
    for name, hexcode in (("stuck", "#D55E00"), ("completed", "#009E73"), ("failed at the trigger", "#E69F00")):
        assert colours[hexcode] > 200, f"no {name} bars on the screenshot"

    phone = tmp_path / "phone.png"
    p = run_chromium(page, f"--screenshot={phone}", width=390, height=1600)
    assert p.returncode == 0 and phone.is_file()
    w, _h, _rows = png_pixels(phone)
    assert w == 390 and colour_counts(phone)["#D55E00"] > 50  # the chart is drawn on a phone too


def test_console_errors_would_be_seen(tmp_path):
    """The detector itself: a page that breaks its own policy produces a console line."""
    from stuckgen.render.html import CSP

    page = tmp_path / "bad.html"
    page.write_text(f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="{CSP}">'
                    "</head><body><script>console.log('ran')</script></body></html>")
    r = run_chromium(page, "--dump-dom")
    assert console_messages(r.stderr), r.stderr[-2000:]


def test_vercel_markers_and_onset_are_drawn_on_the_time_axis(tmp_path):
    from stuckgen.doctor import DoctorReport
    from stuckgen.render.html import doctor_html_lines
    from stuckgen.timeline import Marker, build

    t0 = datetime(2026, 11, 28, 4, 0, tzinfo=timezone.utc)
    rows = [(t0 + timedelta(hours=i), 10, 9 if i < 3 else 2, 0 if i < 3 else 5, 0 if i < 3 else 5) for i in range(8)]
    stuck = Counter({t0 + timedelta(hours=i, minutes=7): 3 for i in range(3, 8)})
    markers = [Marker(at=t0 + timedelta(hours=2, minutes=40), kind="deploy", label="deploy production a1b2c3d"),
               Marker(at=t0 + timedelta(hours=2, minutes=30), kind="env", label="INTERNAL_API_SECRET changed (production)"),
               Marker(at=t0 - timedelta(days=3), kind="deploy", label="long before: left out")]
    tl = build(3600, rows, stuck, onset=t0 + timedelta(hours=3, minutes=7), markers=markers)
    assert [m.label for m in tl.markers] == ["INTERNAL_API_SECRET changed (production)", "deploy production a1b2c3d"]
    report = DoctorReport(generated_at=t0 + timedelta(hours=9), timeline=tl,
                          database={"reachable": True, "table": "public.generations"})
    page = tmp_path / "t.html"
    page.write_text("\n".join(doctor_html_lines(report)))
    r = run_chromium(page, "--dump-dom")
    assert console_messages(r.stderr) == []
    assert 'class="marker deploy"' in r.stdout and 'class="marker env"' in r.stdout
    assert "INTERNAL_API_SECRET changed" in r.stdout and "long before" not in r.stdout
    assert "onset 07:07" in r.stdout
    xs = {k: float(x) for k, x in re.findall(r'class="marker (\w+)"><title>[^<]*</title><line x1="([\d.]+)"', r.stdout)}
    assert xs["env"] < xs["deploy"] < xs["onset"]  # the story reads left to right


def test_timeline_buckets_nest_the_stuck_minutes():
    from stuckgen.timeline import build, choose_bucket

    assert choose_bucket(3000) == 120 and choose_bucket(86400) == 1800 and choose_bucket(10) == 60
    t = datetime(2026, 11, 28, 10, 0, tzinfo=timezone.utc)
    tl = build(600, [(t, 5, 1, 0, 0), (t + timedelta(minutes=20), 3, 0, 2, 2)],
               Counter({t + timedelta(minutes=3): 2, t + timedelta(minutes=9): 1}))
    assert [(b.created, b.stuck, b.failed_at_trigger) for b in tl.buckets] == [(5, 3, 0), (0, 0, 0), (3, 0, 2)]
