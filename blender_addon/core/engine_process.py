"""One engine command in its own process: output read on threads, collected on Blender's thread, cancel by signal."""

from __future__ import annotations

import queue
import signal
import subprocess
import threading

READER_JOIN_SECONDS = 5.0  # after the process ended: how long its output may take to reach the queue


class EngineProcess:
    """`lines()` returns the (is_stdout, text) lines printed since the last call; `ended` once stdout and stderr
    closed and all they carried was returned."""

    def __init__(self, cmd: list[str]):
        self.command = cmd
        self._lines: queue.Queue = queue.Queue()
        self._open_streams = 2
        self.ended = False
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self._readers = [threading.Thread(target=self._read, args=(stream, is_stdout), daemon=True)
                         for stream, is_stdout in ((self.process.stdout, True), (self.process.stderr, False))]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, is_stdout):
        for line in stream:
            self._lines.put((is_stdout, line.rstrip("\n")))
        self._lines.put((None, None))

    def lines(self) -> list[tuple[bool, str]]:
        out = []
        while True:
            try:
                is_stdout, line = self._lines.get_nowait()
            except queue.Empty:
                return out
            if is_stdout is None:
                self._open_streams -= 1
                self.ended = self._open_streams == 0
            else:
                out.append((is_stdout, line))

    @property
    def returncode(self):
        return self.process.poll()

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM (the engine saves what it must and exits), then kill if it hangs; then let the readers pass on
        its last lines."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for reader in self._readers:
            reader.join(READER_JOIN_SECONDS)
