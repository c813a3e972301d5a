"""store stage: the SQLite catalog (source of truth) and the collection manifest."""
