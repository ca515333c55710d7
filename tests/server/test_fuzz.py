"""Thousands of malformed messages at a live server, every class of backend/benchmarks/malformed.py:
each gets an error reply with a code an honest server may give it; afterwards the process and its
worker are the ones that started, and a good estimate still works."""
import collections
import time

import numpy as np
import zmq

from backend.benchmarks import malformed

PER_CLASS = 90      # x 34 classes: about 3,000 messages


def test_a_live_server_survives_every_class_of_malformed_message(server, astronaut):
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(server.address)
    rng = np.random.default_rng(19)
    wrong, sent, started = [], collections.Counter(), time.monotonic()
    try:
        for round_ in range(PER_CLASS):
            for make in malformed.CLASSES:
                frames, allowed = make(rng)
                socket.send_multipart(frames)
                sent[make.__name__] += 1
                reply = malformed.reply_to(socket, timeout_ms=15_000)
                assert reply is not None, f"no reply to {make.__name__} (round {round_})"
                codes = malformed.errors_of(reply)
                if not codes or not codes <= allowed:
                    wrong.append(f"{make.__name__}: {reply.get('kind')} {codes} {reply.get('message', '')[:80]}")
    finally:
        socket.close()
    assert not wrong, wrong[:10]
    print(f"{sum(sent.values())} malformed messages answered in {time.monotonic() - started:.1f} s")
    assert sum(sent.values()) >= 3000
    assert server.process.poll() is None
    with server.client(timeout=10) as client:
        info = client.info(timeout=10)
        [result] = client.estimate([astronaut], timeout=60)
    assert info["worker_deaths"] == 0 and info["outstanding"] == 0
    assert result["normals"].shape == (512, 512, 3)
