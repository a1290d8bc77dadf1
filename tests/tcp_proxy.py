"""A TCP proxy on loopback that a test can cut and restore: a real network outage, on one machine.

`TcpProxy(host, port)` listens on 127.0.0.1 (a free port, `.port`) and forwards every connection
to host:port. `cut()` closes every open connection and refuses new ones (accepted, then closed at
once) until `restore()`; `hang()` accepts new connections and never answers them (a server that
hangs) until `restore()`, which closes those. `close()` stops it. Threads only; nothing leaves the
machine.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._down = False
        self._hanging = False
        self._held: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        """Drop every connection and refuse new ones, as a stopped server or a partition does."""
        with self._lock:
            self._down = True
            sockets, self._open = self._open, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def hang(self) -> None:
        """Accept new connections and never answer them, as a hung server does."""
        with self._lock:
            self._hanging = True

    def restore(self) -> None:
        with self._lock:
            self._down = self._hanging = False
            held, self._held = self._held, []
        for sock in held:  # their clients gave up on them already
            sock.close()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                down, hanging = self._down, self._hanging
                if hanging and not down:
                    self._held.append(client)  # accepted, never answered
                    continue
            if down:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
