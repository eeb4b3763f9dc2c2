"""The proxy's paths (one handler for every plugin): a row id out of range is a 400 naming the
path parameter, as the API's own path parameters answer; every plugin path asks for credentials."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("path", "field", "bound"),
    [
        ("/tensorboard/alice/foo/experiments/0/", "experiment_id", "greater than or equal to 1"),
        ("/tensorboard/alice/foo/groups/0/data", "group_id", "greater than or equal to 1"),
        ("/tensorboard/alice/foo/experiments/9223372036854775808", "experiment_id", "less than"),
    ],
)
async def test_a_row_id_out_of_range_is_a_400(client, path, field, bound):
    r = await client.get(path)
    assert r.status_code == 400
    body = r.json()
    assert list(body["errors"]) == [field]
    assert bound in body["errors"][field][0]


@pytest.mark.parametrize(
    "path",
    [
        "/notebook/alice/foo",
        "/notebook/alice/foo/tree",
        "/tensorboard/alice/foo/",
        "/tensorboard/alice/foo/experiments/3/data",
        "/tensorboard/alice/foo/groups/4",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "OPTIONS"])
async def test_every_plugin_path_and_method_needs_credentials(client, path, method):
    r = await client.request(method, path)
    assert r.status_code == 401
