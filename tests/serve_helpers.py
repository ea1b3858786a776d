"""What the serving tests share: a tiny trained checkpoint (built once per session) and a real
`tmt-serve` process on a free loopback port."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from ct2_helpers import train_briefly
from tiny import ONE_THREAD, ROOT, tiny_assets, write_checkpoint, write_tiny_parallel_corpus

TEST_SENTENCES = [
    "A man runs on the street.",
    "The big red cat sits on the green park.",
    "A woman walks.",
    "The small dog runs in the park with a cat.",
    "Dog.",
    "A blue man sits on the small red street.",
]


def served_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny en-de model trained for a few seconds on the tiny corpus, built once per session.

    The folder is found again by later test modules (pytest's session base folder).
    """
    folder = tmp_path_factory.getbasetemp() / "serve-model"
    checkpoint = folder / "model.pt"
    if checkpoint.is_file():
        return checkpoint
    corpus = write_tiny_parallel_corpus(folder / "corpus")
    model, tokenizer, cfg = tiny_assets(corpus)
    model = train_briefly(model, tokenizer, corpus, updates=100)
    partial = write_checkpoint(folder / "partial.pt", model, tokenizer, cfg)
    partial.rename(checkpoint)
    return checkpoint


class Server:
    """A `tmt-serve` process (scripts/serve.py: no console script needed) on a free port."""

    def __init__(self, *args: str, env: dict | None = None, ready: bool = True) -> None:
        command = [sys.executable, "scripts/serve.py", *args, "--port", "0"]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env or ONE_THREAD, stderr=subprocess.PIPE, text=True
        )
        self.log: list[str] = []
        self.url = self._address()
        if ready:
            self.wait_ready()

    def _address(self) -> str:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            if match := re.search(r"listening on (http://\S+?)/?$", line.strip()):
                return match[1]
        raise AssertionError("tmt-serve exited before listening:\n" + "".join(self.log))

    def wait_ready(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"tmt-serve exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("tmt-serve did not become healthy")

    def get(self, path: str) -> tuple[int, dict | list | str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as response:
                return response.status, _body(response.read(), response.headers)
        except urllib.error.HTTPError as error:
            return error.code, _body(error.read(), error.headers)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> tuple[int, str]:
        """Send `sig`, wait for the exit; (exit status, the rest of standard error)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        _, err = self.process.communicate(timeout=timeout)
        return self.process.returncode, "".join(self.log) + err


def _body(raw: bytes, headers) -> dict | list | str:  # noqa: ANN001
    if headers.get_content_type() == "application/json":
        return json.loads(raw)
    return raw.decode("utf-8")


def post(url: str, fields: dict, form: bool = False) -> tuple[int, dict]:
    """POST fields as JSON (or as a form); (status, JSON answer), errors included."""
    if form:
        data = urllib.parse.urlencode(fields, doseq=True).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
    else:
        data, headers = json.dumps(fields).encode(), {"Content-Type": "application/json"}
    return post_raw(url, data, headers)


def post_raw(url: str, data: bytes, headers: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
