"""Helpers for the browser test: a private JupyterLab server, headless Chromium, and waits on the page.

The server runs on 127.0.0.1 on a free port with a random token, with its own root, config, data, runtime and
settings folders under a temporary directory, in its own process group; ``stop`` shuts its kernels down and kills
the group, then any kernel left over (found by its connection file in our private runtime folder).
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
SETTINGS = {  # JupyterLab user settings: nothing saved behind our back, no news, every cell in the DOM
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                       "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def chromium_path() -> str | None:
    return shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    def __init__(self, root: Path, tmp: Path, env: dict):
        self.root, self.tmp, self.token, self.port = root, tmp, secrets.token_hex(16), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        dirs = {k: tmp / k.lower() for k in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR",
                                             "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR", "IPYTHONDIR")}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        for name, value in SETTINGS.items():
            path = dirs["JUPYTERLAB_SETTINGS_DIR"] / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        self.runtime = dirs["JUPYTER_RUNTIME_DIR"]
        self.env = {**os.environ, **{k: str(v) for k, v in dirs.items()}, **env}
        self.log = open(tmp / "jupyterlab.log", "wb")
        self.proc = None

    def start(self, timeout: float = 120) -> "LabServer":
        cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
               "--ServerApp.port_retries=0", f"--ServerApp.token={self.token}", f"--ServerApp.root_dir={self.root}",
               "--allow-root", "--ServerApp.terminals_enabled=False", "--LabApp.expose_app_in_browser=True",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly"]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)  # its own process group, killed as one in stop()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}; see {self.log.name}")
            try:
                self.api("status")
                return self
            except OSError:
                time.sleep(0.25)
        raise TimeoutError(f"jupyter lab did not answer on {self.url} within {timeout} s; see {self.log.name}")

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def log_tail(self, lines: int = 30) -> str:
        self.log.flush()
        return "\n".join(Path(self.log.name).read_text(errors="replace").splitlines()[-lines:])

    def lab_url(self, relpath: str) -> str:
        return f"{self.url}/lab/tree/{relpath}?reset&token={self.token}"  # reset: no tabs left open by an earlier test

    def stop(self):
        if self.proc is None:
            return
        try:
            for kernel in self.api("kernels"):
                self.api(f"kernels/{kernel['id']}", method="DELETE")
        except OSError:
            pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        for pid in self.leftover_kernels():  # kernels run in their own sessions: find ours by connection file
            os.kill(pid, signal.SIGKILL)
        self.log.close()
        self.proc = None

    def leftover_kernels(self) -> list[int]:
        pids = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if str(self.runtime).encode() in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                pass
        return pids


# ---- the page: JavaScript run through Playwright; window.jupyterapp exists thanks to expose_app_in_browser

KERNEL_IDLE = """() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle'; }"""
ALL_CELLS_RUN = """() => { const w = window.jupyterapp.shell.currentWidget;
  const cells = Array.from(w.content.model.cells).filter(c => c.type === 'code');
  const prompts = Array.from(w.node.querySelectorAll('.jp-InputPrompt')).map(p => p.textContent);
  const busy = prompts.some(p => p.includes('*'));
  const failed = cells.some(c => c.outputs && c.outputs.toJSON().some(o => o.output_type === 'error'));
  return !busy && (failed || cells.every(c => c.executionCount !== null)); }"""  # Run All stops at an error
IMAGE_BYTES = """async (img) => { const buf = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
  let s = '';
  for (let i = 0; i < buf.length; i += 8192) s += String.fromCharCode.apply(null, buf.subarray(i, i + 8192));
  return btoa(s); }"""


def image_bytes(image) -> bytes:
    """The bytes behind an <img> (a blob: URL made by the Image widget), fetched inside the page."""
    return base64.b64decode(image.evaluate(IMAGE_BYTES))


KERNEL_STATE = """() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const dialogs = Array.from(document.querySelectorAll('.jp-Dialog')).map(d => d.innerText.trim());
  const s = w && w.sessionContext;
  const k = s && s.session && s.session.kernel;
  return (!w ? 'no current widget' : !s ? 'no session context' : !k ? 'no kernel (session ' +
          (s.session ? 'started' : 'none') + ')' : 'kernel ' + k.status) +
         (dialogs.length ? '; dialogs: ' + dialogs.join(' | ') : ''); }"""


def wait_idle(page, timeout_ms: float = 60_000):
    page.wait_for_function(KERNEL_IDLE, timeout=timeout_ms, polling=50)


def open_notebook(page, server: LabServer, relpath: str, timeout_ms: float = 180_000, shot: Path | None = None):
    """Open a notebook and wait for its kernel to be idle; one reload if it is not, then fail saying what the page
    and the server showed (kernel state, dialogs, the server log's end)."""
    page.goto(server.lab_url(relpath))
    for attempt in (1, 2):
        try:
            page.wait_for_selector(".jp-Notebook", timeout=120_000)
            wait_idle(page, timeout_ms)
            return
        except Exception as error:  # noqa: BLE001  (Playwright's TimeoutError)
            state = page.evaluate(KERNEL_STATE)
            if shot is not None:
                page.screenshot(path=str(shot.with_name(f"{shot.stem}-attempt{attempt}.png")), full_page=True)
            if attempt == 2:
                raise AssertionError(f"{relpath}: no idle kernel after {timeout_ms / 1000:.0f} s, twice ({state}); "
                                     f"server log:\n{server.log_tail()}") from error
            print(f"{relpath}: no idle kernel after {timeout_ms / 1000:.0f} s ({state}); reloading once")
            page.reload()


NEW_SRC_OR_ERROR = """([box, img, old]) => (img.src && img.src !== old) ||
  Array.from(box.querySelectorAll('.ddpm-lite-error')).some(e => e.textContent.trim() !== '')"""


def wait_new_src(image, old_src: str, timeout_ms: float = 30_000, box=None):
    """Until the <img> shows other bytes (a new blob: URL), or the widget box shows an error."""
    handles = [(box or image).element_handle(), image.element_handle(), old_src]
    image.page.wait_for_function(NEW_SRC_OR_ERROR, arg=handles, timeout=timeout_ms, polling="raf")


def settle(page, image, quiet_ms: int = 300, timeout_ms: float = 60_000):
    """Kernel idle and the picture unchanged for quiet_ms: every queued slider message has been answered."""
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        wait_idle(page, timeout_ms)
        src = image.get_attribute("src")
        try:
            wait_new_src(image, src, timeout_ms=quiet_ms)
        except Exception:  # noqa: BLE001  (Playwright's TimeoutError: nothing changed, which is what we want)
            if page.evaluate(KERNEL_IDLE):
                return
        if time.monotonic() > deadline:
            raise TimeoutError("the widget kept redrawing")
