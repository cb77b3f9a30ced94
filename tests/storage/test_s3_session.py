"""The S3 driver's botocore session: what it leaves out (documentation text, other services' endpoints, boto3)
changes nothing an S3 client does."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.config import Config as BotoConfig

from storage.s3_session import LeanJSONFileLoader, prune_endpoints, s3_only_botocore_session

REGIONS = ["us-east-1", "eu-central-1", "cn-north-1", "us-gov-west-1", "us-iso-east-1"]


def without_documentation(value: Any) -> Any:
    """``value`` with every ``documentation`` string emptied, as plain dicts and lists."""
    if isinstance(value, dict):
        return {
            k: "" if k == "documentation" and isinstance(v, str) else without_documentation(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [without_documentation(item) for item in value]
    return value


def s3_client(session: botocore.session.Session, region: str, style: str = "virtual") -> Any:
    config = BotoConfig(s3={"addressing_style": style})
    return session.create_client(
        "s3", region_name=region, aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", config=config
    )


@pytest.mark.parametrize("region", REGIONS)
def test_s3_resolves_as_with_botocores_own_session(region: str) -> None:
    lean, full = s3_only_botocore_session(), botocore.session.get_session()
    for style in ("virtual", "path"):
        assert s3_client(lean, region, style).meta.endpoint_url == s3_client(full, region, style).meta.endpoint_url
    assert lean.get_available_regions("s3") == full.get_available_regions("s3")
    table = lean.get_component("data_loader").load_data("endpoints")
    assert {name for partition in table["partitions"] for name in partition["services"]} == {"s3"}
    assert [p["partition"] for p in table["partitions"]] == [
        p["partition"] for p in full.get_component("data_loader").load_data("endpoints")["partitions"]
    ]


def test_the_s3_model_and_rules_are_botocores_without_their_documentation() -> None:
    lean, full = s3_only_botocore_session(), botocore.session.get_session()
    for kind in ("service-2", "endpoint-rule-set-1"):
        lean_model = lean.get_component("data_loader").load_service_model("s3", kind)
        full_model = full.get_component("data_loader").load_service_model("s3", kind)
        assert "documentation" in str(full_model)
        assert lean_model == without_documentation(full_model)
        assert type(lean_model) is dict


def test_presigned_urls_match_botocores() -> None:
    """Signing reads the model (operation, shapes, their locations): the same request gets the same URL."""
    clients = [
        s3_client(session, "eu-central-1") for session in (s3_only_botocore_session(), botocore.session.get_session())
    ]
    params = {"Bucket": "bucket", "Key": "a/b c", "ResponseContentType": "text/plain", "Range": "bytes=0-9"}
    urls = [client.generate_presigned_url("get_object", Params=params, ExpiresIn=60) for client in clients]
    assert urls[0].split("X-Amz-Date=")[0] == urls[1].split("X-Amz-Date=")[0]


@pytest.mark.parametrize("compressed", [False, True])
def test_the_loader_empties_documentation_text_only(tmp_path: Path, compressed: bool) -> None:
    data = {"shapes": {"S": {"documentation": "<p>text</p>", "members": {"documentation": {"shape": "T"}}}}}
    raw = json.dumps(data).encode()
    if compressed:
        (tmp_path / "model.json.gz").write_bytes(gzip.compress(raw))
    else:
        (tmp_path / "model.json").write_bytes(raw)
    loaded = LeanJSONFileLoader().load_file(str(tmp_path / "model"))
    assert loaded == {"shapes": {"S": {"documentation": "", "members": {"documentation": {"shape": "T"}}}}}
    assert LeanJSONFileLoader().load_file(str(tmp_path / "missing")) is None


def test_pruning_keeps_partitions_without_s3() -> None:
    table = {
        "partitions": [
            {"partition": "a", "services": {"ec2": {}, "s3": {"x": 1}}},
            {"partition": "b", "services": {"ec2": {}}},
        ]
    }
    assert prune_endpoints(table) == {
        "partitions": [{"partition": "a", "services": {"s3": {"x": 1}}}, {"partition": "b", "services": {}}]
    }


def test_opening_the_driver_does_not_import_boto3() -> None:
    code = (
        "import sys\n"
        "from storage.s3 import S3Driver, S3Settings\n"
        "S3Driver(S3Settings(bucket='b', region='us-east-1', access_key_id='a', secret_access_key='s'))\n"
        "print(sorted(m for m in ('boto3', 's3transfer', 'multiprocessing') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
