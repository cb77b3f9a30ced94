"""The public image catalog: a metadata index kept by every push and delete, the queries over it, the catalog
API (``/api/v1/catalog/...``) and the Docker-Hub-like web pages.

Modules: ``models`` (the index tables, in the account database), ``views`` (the data every query returns, shared by
the API and the pages), ``index`` (keeps the tables in step with storage; ``rebuild``), ``queries`` (search, pages,
visibility), ``layers``/``files`` (an image's files, read from its layer blobs, and diffs between tags), ``api``
(JSON endpoints and the OpenAPI document), ``web`` (server-rendered pages, sign-in sessions).
"""
