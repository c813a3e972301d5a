"""Which ports image URLs may name (setting url_ports)."""

from __future__ import annotations

import pytest

from imgsearch.errors import InvalidInputError, PortNotAllowedError
from imgsearch.ingest.fetch import check_url, port_allowed


@pytest.mark.parametrize("port", [80, 443, 8080, 8443, 1024, 9999, 45000, 65535])
def test_web_and_high_ports_are_allowed(port: int) -> None:
    assert port_allowed(port)


@pytest.mark.parametrize("port", [21, 22, 25, 110, 3306, 5432, 6379, 9200, 11211, 27017])
def test_service_ports_are_refused(port: int) -> None:
    assert not port_allowed(port)
    with pytest.raises(PortNotAllowedError, match=f"port {port} "):
        check_url(f"http://93.184.216.34:{port}/a.jpg", allow_private=False)


def test_a_port_named_alone_is_allowed_even_if_a_service_uses_it() -> None:
    assert port_allowed(9200, "80,443,9200") and not port_allowed(9201, "80,443,9200")
    assert not port_allowed(9200, "1024-65535")


@pytest.mark.parametrize("spec", ["80,http", "0-100", "70000", "90-80"])
def test_a_bad_url_ports_value_is_an_error(spec: str) -> None:
    with pytest.raises(InvalidInputError, match="url_ports"):
        port_allowed(80, spec)
