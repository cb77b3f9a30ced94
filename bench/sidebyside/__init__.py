"""Side-by-side benchmark of dockyard against CNCF Distribution 2.8 (issue 8): ``python -m bench``.

Modules, from the bottom up:

- :mod:`.plan` — the sizes and counts of a full run and of ``--quick``;
- :mod:`.stats` — percentiles; :mod:`.procstat` — a server's CPU seconds and peak RSS, the client's CPU;
- :mod:`.servers` — starting both registries on free 127.0.0.1 ports (filesystem, or one moto S3 server);
- :mod:`.limits` — the machine's limits measured in the same run (SHA-256 on one core, loopback sendfile and
  copy, a cold read of the disk and a durable write to it);
- :mod:`.runner` — one row: rounds in alternation (A B, B A, ...), with CPU and RSS accounting;
- :mod:`.blobs`, :mod:`.api`, :mod:`.load` — the clients (http.client with sendfile for bytes, aiohttp for requests);
- :mod:`.blob_rows`, :mod:`.api_rows`, :mod:`.image_rows` — the workload rows;
- :mod:`.targets` — the issue's targets judged per row; :mod:`.report` — the Markdown table and the JSON document;
- :mod:`.cli` — the command line.

Ceilings: a row that no registry could meet on this machine says so, with a number measured in the same run, so that
"dockyard could do better" reads apart from "no server could". A row's ``ceiling`` is the best value any registry could
reach in it: the cold read of the disk for the cold download, the durable write (write + fsync) for the monolithic
uploads with the SHA-256 target (skopeo's own ``oci:`` to ``oci:`` copy was tried for the skopeo pull and dropped: it is
slower than a pull, see :mod:`.image_rows`). :func:`.targets.judge` turns it into the best ratio possible against
Distribution; a missed check that even that would miss is ``out of reach`` (``row.reachable`` False, ``MISSED (out of
reach)`` in the table); a ceiling that either server beat bounds nothing and judges nothing.
"""
