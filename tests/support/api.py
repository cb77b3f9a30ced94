"""Direct HTTP checks against a live registry (what the clients saw, verified at the API level)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import urljoin

import requests

from tests.support.accesslog import log_tail
from tests.support.server import LiveRegistry

MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
TIMEOUT = 30.0
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


def describe(response: requests.Response, registry: LiveRegistry | None = None) -> str:
    """Request line, status, headers and body of ``response`` (plus the log tail): failure evidence."""
    body = response.content[:2000]
    lines = [
        f"{response.request.method} {response.request.url} -> {response.status_code}",
        f"response headers: {dict(response.headers)}",
        f"response body: {body!r}",
    ]
    if registry is not None:
        lines.append(f"registry log tail:\n{log_tail(registry, 15)}")
    return "\n".join(lines)


def get_manifest(registry: LiveRegistry, name: str, reference: str, method: str = "GET") -> requests.Response:
    return requests.request(
        method,
        f"{registry.url}/v2/{name}/manifests/{reference}",
        headers={"Accept": MANIFEST_ACCEPT},
        timeout=TIMEOUT,
    )


def get_blob(registry: LiveRegistry, name: str, digest: str) -> requests.Response:
    return requests.get(f"{registry.url}/v2/{name}/blobs/{digest}", timeout=TIMEOUT)


def sha256_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class TagPage:
    """One page of ``/tags/list``: the URL asked, its tags and its ``Link`` header (None on the last page)."""

    url: str
    tags: list[str]
    link: str | None


def tag_pages(registry: LiveRegistry, name: str, n: int, max_pages: int = 100) -> list[TagPage]:
    """Walk ``GET /v2/<name>/tags/list?n=N`` and every ``Link: <...>; rel="next"`` after it."""
    url: str | None = f"{registry.url}/v2/{name}/tags/list?n={n}"
    pages: list[TagPage] = []
    while url is not None:
        if len(pages) >= max_pages:
            raise AssertionError(f"more than {max_pages} pages: the Link headers loop ({pages[-3:]})")
        response = requests.get(url, timeout=TIMEOUT)
        if response.status_code != 200:
            raise AssertionError(describe(response, registry))
        link = response.headers.get("Link")
        pages.append(TagPage(url, list(response.json()["tags"]), link))
        if link is None:
            url = None
        else:
            match = _NEXT_LINK.search(link)
            if match is None:
                raise AssertionError(f"malformed Link header {link!r} on {url}")
            url = urljoin(url, match.group(1))
    return pages
