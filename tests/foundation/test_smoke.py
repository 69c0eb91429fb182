async def test_healthz(client):
    r = await client.get("/healthz")
    assert r.status_code == 200


async def test_readyz(client):
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["database"] == "ok"
