"""The S3 driver's settings, validated once. Kept apart from ``storage.s3`` so that reading the
configuration does not import boto3 (only opening an S3 driver does)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MiB = 1 << 20
MIN_PART = 5 * MiB
"""S3's smallest part (except the last one of an upload)."""


class S3Settings(BaseModel):
    """Where and how the S3 driver stores objects."""

    model_config = ConfigDict(extra="forbid")

    bucket: str
    prefix: str = Field("", description="key prefix, so several registries can share a bucket")
    region: str = "us-east-1"
    endpoint_url: str | None = Field(None, description="for S3-compatible stores, e.g. http://127.0.0.1:9000")
    access_key_id: str | None = Field(None, description="default: the AWS credential chain")
    secret_access_key: str | None = None
    addressing_style: Literal["auto", "virtual", "path"] = "path"
    multipart_chunk_size: int = Field(10 * MiB, ge=MIN_PART, description="S3 part size; S3's minimum is 5 MiB")
    redirect: bool = Field(False, description="answer blob GETs with 307 to a presigned URL")
    redirect_ttl: int = Field(1200, gt=0, description="seconds a presigned URL stays valid")
    sse: Literal["AES256", "aws:kms"] | None = None
    sse_kms_key_id: str | None = None
    max_concurrency: int = Field(32, gt=0, description="S3 calls in flight at once")
    # An unreachable or hung S3 must surface as a retryable 503 in seconds, not hold requests for minutes (botocore's
    # defaults: 60 s connect and read timeouts, several attempts): worst case max_attempts * (timeout + backoff).
    connect_timeout: float = Field(3.0, gt=0, description="seconds to open a connection to S3")
    read_timeout: float = Field(15.0, gt=0, description="seconds S3 may stay silent on an open connection")
    # ... except while it assembles a multipart upload or copies an object, which it does before answering (AWS sends
    # whitespace meanwhile; moto and some S3-compatible stores stay silent: moto takes ~13 s for 1 GiB here).
    assemble_timeout: float = Field(
        600.0, gt=0, description="seconds S3 may take to complete a multipart upload or copy an object"
    )
    max_attempts: int = Field(3, ge=1, description="tries of one S3 call (the first included) before giving up")
