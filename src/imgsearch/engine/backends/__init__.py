"""Collection backends: where a collection's items and vectors live.

``local`` (a directory: SQLite + FAISS, the default) and ``milvus`` (a Milvus server)
implement ``CollectionBackend`` (``base``); ``registry`` opens one from a path or URI.
A new backend is a module here, one entry in ``registry.BACKENDS`` and its tests.
"""
