"""Starting the other languages' guarded MCP servers for the interop tests:
the Go one (examples/mcp's `inventory` mode) and the TypeScript one
(examples/mcp/ts-server/server.mjs). Each prints `listening <url>` on
stdout when ready; the tests wait for that line, never for a time."""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
from pathlib import Path

from .conftest import REPO, go_binary, stop_process


def example_binary() -> str:
    """$MCP_EXAMPLE_BIN (what `make test` builds), the checkout's
    .build/example-mcp, or one build of examples/mcp per test session."""
    return go_binary("MCP_EXAMPLE_BIN", "./examples/mcp", "examples/mcp", local=REPO / ".build" / "example-mcp")


class Process:
    """A server process whose stdout announced its URL; stderr kept for failures."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, what: str, timeout: float = 60) -> None:
        self.what = what
        self.proc = subprocess.Popen(args, cwd=cwd, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.stderr: list[str] = []
        lines: queue.Queue[str | None] = queue.Queue()

        def pump_out() -> None:
            assert self.proc.stdout is not None
            for raw in self.proc.stdout:
                lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
            lines.put(None)

        def pump_err() -> None:
            assert self.proc.stderr is not None
            for raw in self.proc.stderr:
                self.stderr.append(raw.decode("utf-8", "replace"))

        threading.Thread(target=pump_out, daemon=True).start()
        threading.Thread(target=pump_err, daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise RuntimeError(f"{what} did not announce its URL within {timeout:.0f} s:\n" + "".join(self.stderr[-30:])) from None
            if line is None:
                self.stop()
                raise RuntimeError(f"{what} exited before listening:\n" + "".join(self.stderr[-30:]))
            if line.startswith("listening "):
                self.url = line[len("listening "):].strip()
                return

    def log(self) -> str:
        return "".join(self.stderr)

    def stop(self) -> None:
        stop_process(self.proc)
