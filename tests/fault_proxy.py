"""A TCP proxy in front of a test server that injects faults: pass, stall, cut, slow.

- ``pass``: bytes flow both ways;
- ``stall``: connections are accepted and read, nothing is answered any more (a hung endpoint);
- ``cut``: every connection is reset;
- ``slow``: bytes flow both ways, each chunk `delay` seconds late.

``stall`` and ``cut`` start once `after` bytes in total went up (0: at once), and `faulted` is set then, so a test
can fault an upload halfway through. The mode can change while clients are connected; `connections` counts the
connections accepted.
"""

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class FaultProxy:
    """A proxy listening on 127.0.0.1:`port` in front of 127.0.0.1:`target`."""

    target: int
    mode: str = "pass"
    after: int = 0
    delay: float = 0.05
    port: int = 0
    connections: int = 0
    faulted: threading.Event = field(default_factory=threading.Event)
    _sent_up: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _sockets: list[socket.socket] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The proxy's HTTP URL."""
        return f"http://127.0.0.1:{self.port}"

    def _reset(self, *sockets: socket.socket) -> None:
        for s in sockets:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, not FIN
                s.close()
            except OSError:
                pass

    def _passing(self, chunk: bytes) -> bytes:
        """The part of an upstream `chunk` that goes through before a stall or cut starts."""
        if self.mode not in ("stall", "cut"):
            return chunk
        with self._lock:
            room = max(self.after - self._sent_up, 0)
            self._sent_up += len(chunk)
        if room < len(chunk):
            self.faulted.set()
        return chunk[:room]

    def _pipe(self, source: socket.socket, sink: socket.socket, upstream: bool) -> None:
        try:
            while not self._stop.is_set():
                chunk = source.recv(65536)
                if not chunk:
                    break
                if upstream:
                    passing = self._passing(chunk)
                    if passing:
                        sink.sendall(passing)
                    if len(passing) < len(chunk) and self.mode == "cut":
                        break
                    continue
                if self.mode == "slow":
                    self._stop.wait(self.delay)
                if self.faulted.is_set() and self.mode == "stall":
                    continue  # answers are swallowed once stalled
                sink.sendall(chunk)
        except OSError:
            pass
        self._reset(source, sink)

    def _serve(self, client: socket.socket) -> None:
        self.connections += 1
        if self.mode == "cut" and self.faulted.is_set():
            self._reset(client)
            return
        upstream = socket.create_connection(("127.0.0.1", self.target))
        self._sockets += [client, upstream]
        threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
        threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            self._serve(client)


@contextmanager
def fault_proxy(target: int) -> Iterator[FaultProxy]:
    """A `FaultProxy` in front of 127.0.0.1:`target` for the block (mode ``pass`` to start)."""
    listener = socket.create_server(("127.0.0.1", 0))
    proxy = FaultProxy(target, port=listener.getsockname()[1])
    threading.Thread(target=proxy._accept, args=(listener,), daemon=True).start()
    try:
        yield proxy
    finally:
        proxy._stop.set()
        listener.close()
        proxy._reset(*proxy._sockets)
