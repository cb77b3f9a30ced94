"""S3-specific behaviour beyond the shared contract: no multipart upload is left behind."""

from __future__ import annotations

import os

from storage.s3 import S3Driver, S3Settings
from tests.support.s3 import S3Server


async def test_deleting_a_folder_aborts_unfinished_multipart_uploads(s3: S3Server) -> None:
    bucket = s3.new_bucket()
    driver = S3Driver(S3Settings(**s3.driver_settings(bucket, prefix="r", multipart_chunk_size=5 << 20)))
    writer = await driver.writer("/uploads/u1/data")
    await writer.write(os.urandom(6 << 20))
    await writer.close()
    client = s3.client()
    assert len(client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])) == 1
    await driver.delete("/uploads/u1")
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    await driver.close()


async def test_redirect_url_is_presigned(s3: S3Server) -> None:
    bucket = s3.new_bucket()
    driver = S3Driver(S3Settings(**s3.driver_settings(bucket, redirect=True, redirect_ttl=60)))
    await driver.put_content("/blob", b"payload")
    url = await driver.redirect_url("/blob")
    assert url is not None
    assert "Signature" in url or "X-Amz-Signature" in url
    import requests

    assert requests.get(url, timeout=10).content == b"payload"
    await driver.close()
