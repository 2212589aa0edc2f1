"""The explorer's frame: the server starts, serves its page offline, documents its endpoints, refuses bad names."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cnnlab.cli import main
from cnnlab.serve import create_app


@pytest.fixture(scope="module")
def client(served_runs):
    return TestClient(create_app(served_runs), base_url="http://127.0.0.1")


def test_the_page_and_its_api_documentation_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "cnnlab explorer" in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # offline: nothing fetched from elsewhere
    assert client.get("/app.js").status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "cnnlab explorer"


def test_a_taken_port_is_one_line(capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "choose another --port" in err


def test_the_page_loads_in_a_real_browser(browser, live_server):
    browser.get(live_server)
    assert browser.title == "cnnlab explorer"
    tabs = browser.find_elements("css selector", "#tabs button")
    assert [t.text for t in tabs] == ["Look inside", "Kernels", "Convolution", "Training", "Data"]
