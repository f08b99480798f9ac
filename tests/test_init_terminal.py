"""init and schema on a real terminal (a pseudo-terminal): the question, and lines that fit 80 and 100 columns."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import photoshot  # noqa: E402

STUCKGEN = [sys.executable, "-m", "stuckgen"]


def _env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STUCKGEN_") and k not in ("DATABASE_URL",)}
    env.update(NO_COLOR="1", TERM="xterm")
    return env


def run_on_terminal(args: list[str], cwd: Path, *, answer: str | None = None, columns: int = 100,
                    timeout: float = 60) -> tuple[int, str]:
    """Run with stdin/stdout/stderr on one pseudo-terminal of ``columns``; type ``answer`` at the question."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = _env(cwd)
    env["COLUMNS"] = str(columns)
    proc = subprocess.Popen(STUCKGEN + args, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=env,
                            close_fds=True)
    os.close(slave)
    out = b""
    sent = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            if answer is not None and not sent and b"[Y/n]" in out:
                os.write(master, (answer + "\n").encode())
                sent = True
        elif proc.poll() is not None:
            break
    proc.wait(timeout=10)
    os.close(master)
    text = out.decode(errors="replace").replace("\r\n", "\n")
    return proc.returncode, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # styles are not width


@pytest.fixture
def shots(empty_db):
    photoshot.create(empty_db)
    return empty_db


def test_init_on_a_terminal_asks_and_a_no_writes_nothing(shots, tmp_path):
    code, text = run_on_terminal(["init", "-d", shots, "--table", "Shot"], tmp_path, answer="n")
    assert code == 0, text
    assert "Write this to stuckgen.toml? [Y/n]" in text and "nothing written" in text
    assert not (tmp_path / "stuckgen.toml").exists()
    code, text = run_on_terminal(["init", "-d", shots, "--table", "Shot"], tmp_path, answer="y")
    assert code == 0, text
    assert 'table = "Shot"' in (tmp_path / "stuckgen.toml").read_text()


@pytest.mark.parametrize("columns", [80, 100])
def test_schema_census_fits_the_terminal(shots, tmp_path, columns):
    code, text = run_on_terminal(["schema", "-d", shots, "--table", "Shot"], tmp_path, columns=columns)
    assert code == 0, text
    assert "Status census of Shot.status" in text and "'starting'" in text
    too_wide = [line for line in text.splitlines() if len(line) > columns and not line.startswith("note:")]
    assert not too_wide, "\n".join(too_wide)
