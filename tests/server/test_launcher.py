from backend.client.launcher import ServerProcess, free_loopback_address, running_servers
from backend.client import ServerError

import pytest


def test_a_client_can_start_wait_for_and_stop_a_server(untrained_weights, tmp_path):
    address = free_loopback_address()
    process = ServerProcess(address=address, log_path=tmp_path / "server.log",
                            extra_args=("--weights", str(untrained_weights),
                                        "--state-file", str(tmp_path / "state.json")))
    process.start()
    try:
        info = process.wait_ready(timeout=60)
        assert info["address"] == address and process.running
        [state] = running_servers(tmp_path)          # found through its state file
        assert state["address"] == info["address"] and state["pid"] == info["pid"]
    finally:
        assert process.stop() == 0
    assert not process.running and running_servers(tmp_path) == []


def test_a_server_that_cannot_start_says_why(tmp_path):
    process = ServerProcess(address=free_loopback_address(), log_path=tmp_path / "server.log",
                            extra_args=("--weights", str(tmp_path / "missing.safetensors")))
    process.start()
    with pytest.raises(ServerError, match="weights file not found"):
        process.wait_ready(timeout=60)
    process.stop()
