"""Scrub finds corrupt blobs and missing references; repair stops corrupt bytes from being served."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from registry import keys
from registry.app import create_app
from registry.config import S3Storage, Settings
from registry.reference import parse_digest
from registry.store.scrub import scrub
from tests.registry.conftest import Client, ClientFactory
from tests.support.oci import error_code, push_image
from tests.support.s3 import S3Server


async def corrupt(client: Client, digest: str) -> None:
    """Overwrite the blob's bytes wherever they are stored (its data file, or the object its pointer names)."""
    store = client.server.app[keys.STORE]  # type: ignore[union-attr]
    located = await store.blobs.locate(parse_digest(digest))
    assert located is not None
    await store.driver.put_content(located.storage_key, b"rotten bytes")


async def layer_digest(client: Client, tag: str) -> str:
    manifest = await (await client.get(f"/v2/lib/app/manifests/{tag}")).json(content_type=None)
    return str(manifest["layers"][0]["digest"])


async def test_scrub_finds_and_quarantines_corrupt_blob(client: Client) -> None:
    await push_image(client, "lib/app", "v1")
    store = client.server.app[keys.STORE]  # type: ignore[union-attr]
    clean = await scrub(store)
    assert clean.clean
    assert clean.blobs_checked == 3
    assert clean.manifests_checked == 1
    bad = await layer_digest(client, "v1")
    await corrupt(client, bad)
    report = await scrub(store)
    assert report.corrupt == [bad]
    assert report.quarantined == []
    assert (await client.get(f"/v2/lib/app/blobs/{bad}")).status == 200  # not repaired yet
    repaired = await scrub(store, repair=True)
    assert repaired.quarantined == [bad]
    resp = await client.get(f"/v2/lib/app/blobs/{bad}")
    assert resp.status == 404
    assert await error_code(resp) == "BLOB_UNKNOWN"
    after = await scrub(store)
    assert after.corrupt == []
    assert [(repo, missing) for repo, _, missing in after.missing] == [("lib/app", bad)]


def test_scrub_command_on_filesystem(tmp_path: Path) -> None:
    data = tmp_path / "data"
    blob = data / "v1" / "blobs" / "sha256" / "ab" / ("ab" + "0" * 62) / "data"
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"not what the digest says")
    cmd = [sys.executable, "-m", "dockyard", "scrub", "--data", str(data)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "corrupt blob: sha256:ab" in result.stdout
    result = subprocess.run([*cmd, "--repair"], capture_output=True, text=True, timeout=60)
    assert "moved to quarantine" in result.stdout
    assert not blob.exists()
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


async def test_scrub_corruption_in_bucket(aiohttp_client: ClientFactory, s3: S3Server) -> None:
    bucket = s3.new_bucket()
    client = await aiohttp_client(create_app(Settings(storage=S3Storage(**s3.driver_settings(bucket, prefix="p")))))
    await push_image(client, "lib/app", "v1")
    bad = await layer_digest(client, "v1")
    algorithm, hexpart = bad.split(":")
    blob_folder = f"p/v1/blobs/{algorithm}/{hexpart[:2]}/{hexpart}"
    pointer = json.loads(s3.client().get_object(Bucket=bucket, Key=f"{blob_folder}/object")["Body"].read())
    s3.client().put_object(Bucket=bucket, Key="p" + pointer["key"], Body=b"flipped")  # the upload object, in place
    store = client.server.app[keys.STORE]  # type: ignore[union-attr]
    report = await scrub(store, repair=True)
    assert report.quarantined == [bad]
    assert (await client.get(f"/v2/lib/app/blobs/{bad}")).status == 404
