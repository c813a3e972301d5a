"""The HTTP API v1 (FastAPI): ``create_app`` builds it over one collection."""

from imgsearch.web.app import create_app

__all__ = ["create_app"]
