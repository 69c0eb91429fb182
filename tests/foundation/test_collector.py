"""The running app's garbage collector: start-up's objects frozen, passes spaced out."""

import gc

from service.app import GC_THRESHOLD


async def test_the_running_app_spaces_the_collector_passes(app, client):
    # `app` has been through its lifespan's start: the thresholds are the app's own.
    assert (await client.get("/healthz")).status_code == 200
    assert gc.get_threshold() == GC_THRESHOLD
    assert GC_THRESHOLD[0] > 700 * 10
    assert gc.get_freeze_count() > 0
