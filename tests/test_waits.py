"""Every wait has a bound and says what it waits for (issue 14, defect 8): the embedded chain's lock, held by
another command, and a node that accepts connections but never answers."""

from __future__ import annotations

import fcntl
import os
import socket
import threading
import time

import pytest
from helpers import run


def test_a_held_embedded_chain_is_waited_for_with_a_message_then_refused(vks_dir, monkeypatch, capsys):
    from wmproof.chain import embedded

    run("publish", vks_dir / "a.wvk")  # creates the embedded chain
    lock_path = embedded.default_data_home() / embedded.LOCK_FILE
    monkeypatch.setattr(embedded, "LOCK_TIMEOUT", 1.0)
    fd = os.open(lock_path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        t0 = time.monotonic()
        from wmproof_cli.main import run_cli

        capsys.readouterr()
        code = run_cli(["timestamp", str(vks_dir / "a.wvk")])
        stderr = capsys.readouterr().err.splitlines()
        assert code == 4 and time.monotonic() - t0 < 10
        assert stderr[0].startswith("waiting for the embedded chain") and "(up to 1 s)" in stderr[0]  # the wait
        assert len(stderr) == 2 and stderr[1].startswith("error:") and "in use by another wmproof" in stderr[1]
    finally:
        os.close(fd)
    run("timestamp", vks_dir / "a.wvk")  # released: it works again


@pytest.fixture
def vks_dir(owner, tmp_path):
    from fractions import Fraction

    from wmproof.protocol import keygen, save_verification_key

    _, vk = keygen(owner, "adi-backdoor", items=20, num_classes=10, input_shape=(1, 28, 28), alpha=Fraction(1, 100))
    save_verification_key(vk, tmp_path / "a.wvk")
    return tmp_path


def test_a_silent_node_costs_one_timeout_not_five():
    """web3's own retries made a node that never answers cost about 155 s per command."""
    from wmproof.chain.node import connect_rpc

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    threading.Thread(target=lambda: [held.append(listener.accept()[0]) for _ in range(16)], daemon=True).start()
    web3 = connect_rpc(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=1.0)
    t0 = time.monotonic()
    with pytest.raises(Exception):  # noqa: B017 (the transport's own timeout error)
        web3.eth.chain_id  # noqa: B018
    assert time.monotonic() - t0 < 3
    listener.close()
    for s in held:
        s.close()


def test_a_node_answering_nonsense_is_exit_4_not_a_crash():
    """Issue 14, defect 4: a node whose eth_chainId answer is an object crashed the CLI (exit 70)."""
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from wmproof_cli.main import run_cli

    class Node(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            body = json.dumps({"jsonrpc": "2.0", "id": request.get("id"), "result": {"chain": "yes"}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Node)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert run_cli(["chain", "info", "--rpc-url", url, "--registry", "0x" + "11" * 20]) == 4
    finally:
        server.shutdown()
        server.server_close()
