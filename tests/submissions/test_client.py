"""The HTTP client against the real site on 127.0.0.1: submit, errors that name the field,
auth, an empty queue, and retries that carry a caller over a restart of the server."""

from __future__ import annotations

import threading
import time

import pytest

from contract.protocol import LeaseRequest
from contract.schema import RunConfig
from submissions.client import Client, ClientError
from tests.submissions.conftest import LiveSite
from tests.submissions.factories import CPU, cpu_submission

CONFIG = RunConfig.model_validate(
    {
        "trainer": "reference@0.1.0",
        "recipe": "cpu_smoke",
        "overrides": {"num_iterations": 20},
        "hardware_class": "cpu",
        "gpus_per_node": 0,
        "seed": 7,
    }
)


def test_submit_returns_the_entry_url_and_queues_a_job(live_site: LiveSite) -> None:
    with Client(live_site.url, live_site.tokens["alice"]) as client:
        accepted = client.submit(cpu_submission(CONFIG))
    assert accepted.url.startswith(live_site.url + "/entries/")
    assert accepted.job_id is not None
    assert live_site.job(accepted.job_id)["status"] == "queued"


def test_submit_is_idempotent(live_site: LiveSite) -> None:
    with Client(live_site.url, live_site.tokens["alice"]) as client:
        first = client.submit(cpu_submission(CONFIG))
        again = client.submit(cpu_submission(CONFIG))
        with pytest.raises(ClientError) as exc:
            client.submit(cpu_submission(CONFIG, title="another title"))
    assert again == first
    assert exc.value.status == 409


def test_refused_submission_names_the_field(live_site: LiveSite) -> None:
    bad = CONFIG.model_copy(update={"overrides": {"learning_rate": 0.1}})
    with Client(live_site.url, live_site.tokens["alice"]) as client, pytest.raises(ClientError) as exc:
        client.submit(cpu_submission(bad))
    assert exc.value.status == 422
    assert "run_config.overrides" in str(exc.value)
    assert "learning_rate" in str(exc.value)


def test_missing_token_is_401(live_site: LiveSite) -> None:
    with Client(live_site.url) as client, pytest.raises(ClientError) as exc:
        client.submit(cpu_submission(CONFIG))
    assert exc.value.status == 401


def test_submitter_cannot_lease(live_site: LiveSite) -> None:
    with Client(live_site.url, live_site.tokens["alice"]) as client, pytest.raises(ClientError) as exc:
        client.lease(LeaseRequest(worker_id="w", fingerprint=CPU))
    assert exc.value.status == 403
    assert "worker" in str(exc.value)


def test_empty_queue_leases_nothing(live_site: LiveSite) -> None:
    with Client(live_site.url, live_site.tokens["gpu-node"]) as client:
        assert client.lease(LeaseRequest(worker_id="w", fingerprint=CPU)) is None


def test_retries_outlive_a_server_restart(live_site: LiveSite) -> None:
    live_site.stop()
    restarter = threading.Timer(1.5, live_site.start)
    restarter.start()
    started = time.monotonic()
    try:
        with Client(live_site.url, live_site.tokens["gpu-node"], retries=8, backoff_s=0.25) as client:
            assert client.lease(LeaseRequest(worker_id="w", fingerprint=CPU)) is None
    finally:
        restarter.join()
    assert time.monotonic() - started >= 1.0  # it really waited for the server to come back


def test_unreachable_server_is_a_connection_error(free_port: int) -> None:
    client = Client(f"http://127.0.0.1:{free_port}", "t", retries=1, backoff_s=0.01)
    with client, pytest.raises(ClientError) as exc:
        client.lease(LeaseRequest(worker_id="w", fingerprint=CPU))
    assert exc.value.status == 0
    assert "connection_failed" in str(exc.value)


def test_bad_base_url_is_refused() -> None:
    with pytest.raises(ValueError, match="base_url"):
        Client("127.0.0.1:8000")
