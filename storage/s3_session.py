"""The botocore session of the S3 driver, holding only what an S3 client uses.

botocore parses its data files (the S3 API model, the endpoint rules, ``endpoints.json``) into Python objects
that its clients keep for their whole life. Two thirds of that an S3 client never reads: the ``documentation``
text of every shape and operation (it only feeds docstrings), and the entries of the ~300 other AWS services in
``endpoints.json``. :func:`s3_only_botocore_session` loads the files without them (documentation strings
empty), into plain dicts (botocore's own loader builds ``OrderedDict``, heavier, and ordered like a dict), so
those objects never exist: an idle worker on S3 saves about 5 MiB, its peak at start-up too. Everything S3
resolves stays as it was (every partition and region); tests compare the endpoints, the signing and the model
with botocore's own session.

This module imports botocore, not boto3: boto3 adds its resource layer and s3transfer (with multiprocessing), which
the driver does not use, about 3 MiB more.
"""

from __future__ import annotations

import gzip
import json
import os
from typing import Any

import botocore.session
from botocore.loaders import JSONFileLoader, create_loader

_EXTENSIONS = (".json", ".json.gz")  # botocore's order
KEPT_SERVICE = "s3"


def _without_documentation(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, its ``documentation`` text emptied (the key stays: botocore reads some of them
    with ``[]``; a member that happens to be named so is an object, not a string, and stays whole)."""
    return {name: "" if name == "documentation" and isinstance(value, str) else value for name, value in pairs}


def prune_endpoints(table: dict[str, Any]) -> dict[str, Any]:
    """``endpoints.json`` with each partition's services reduced to S3 (partitions and their regions stay)."""
    for partition in table.get("partitions", []):
        services = partition.get("services", {})
        partition["services"] = {KEPT_SERVICE: services[KEPT_SERVICE]} if KEPT_SERVICE in services else {}
    return table


class LeanJSONFileLoader(JSONFileLoader):
    """botocore's file loader (``<path>.json``, else ``<path>.json.gz``; None when neither exists), parsing into
    plain dicts with empty documentation strings, and keeping only S3 of an ``endpoints`` table."""

    def load_file(self, file_path: str) -> Any:
        for extension in _EXTENSIONS:
            full_path = file_path + extension
            if os.path.isfile(full_path):
                with gzip.open(full_path) if extension.endswith(".gz") else open(full_path, "rb") as fh:
                    data = json.loads(fh.read(), object_pairs_hook=_without_documentation)
                if os.path.basename(file_path) == "endpoints":
                    data = prune_endpoints(data)
                return data
        return None


def s3_only_botocore_session() -> botocore.session.Session:
    """A new botocore session (configured from the environment and ``~/.aws`` as botocore's own) whose data
    loader is :class:`LeanJSONFileLoader`, searching the same paths (``AWS_DATA_PATH`` first)."""
    session = botocore.session.get_session()
    loader = create_loader(session.get_config_variable("data_path"))
    loader.file_loader = LeanJSONFileLoader()
    session.register_component("data_loader", loader)
    return session
