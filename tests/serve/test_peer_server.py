"""The FastAPI peer `carscope bench serve` measures serve against (carscope/benchmarks/peer_server.py): started as
the benchmark starts it, it answers a photo with the right class."""

from __future__ import annotations

import json

from carscope.benchmarks.peer_server import peer_argv
from carscope.common.servers import ServerProcess
from tests.serve.http import Client, multipart
from tests.serve.tinybundle import EXPECTED, photo


def test_the_peer_answers_a_photo(bundle_dir):
    with ServerProcess(peer_argv(bundle_dir), "the FastAPI peer", ready_path="/readyz", grace_s=5.0) as peer:
        client = Client(peer.url)
        for colour in ("red", "blue"):
            body, ctype = multipart("image", photo(colour))
            status, _, data = client.request("POST", "/api/v1/predict", body, {"Content-Type": ctype})
            answer = json.loads(data)
            assert status == 200
            assert answer["model"]["top"][0]["label"] == EXPECTED[colour]
            assert 0.5 < answer["model"]["top"][0]["confidence"] <= 1.0
            assert answer["view"]["label"] == "exterior"
        client.close()
