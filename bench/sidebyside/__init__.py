"""Side-by-side benchmark of dockyard against CNCF Distribution 2.8 (issue 8): ``python -m bench``.

Modules, from the bottom up:

- :mod:`.plan` — the sizes and counts of a full run and of ``--quick``;
- :mod:`.stats` — percentiles; :mod:`.procstat` — a server's CPU seconds and peak RSS, the client's CPU;
- :mod:`.servers` — starting both registries on free 127.0.0.1 ports (filesystem, or one moto S3 server);
- :mod:`.limits` — the machine's limits measured in the same run (SHA-256 on one core, loopback sendfile);
- :mod:`.runner` — one row: rounds in alternation (A B, B A, ...), with CPU and RSS accounting;
- :mod:`.blobs`, :mod:`.api`, :mod:`.load` — the clients (http.client with sendfile for bytes, aiohttp for requests);
- :mod:`.blob_rows`, :mod:`.api_rows`, :mod:`.image_rows` — the workload rows;
- :mod:`.targets` — the issue's targets judged per row; :mod:`.report` — the Markdown table and the JSON document;
- :mod:`.cli` — the command line.
"""
