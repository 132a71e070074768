# SPDX-License-Identifier: GPL-2.0-or-later
"""``qgis_glue.network``: QGIS's proxy settings as a ``requests`` proxies mapping."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from qgis.core import QgsNetworkAccessManager
from qgis.PyQt.QtNetwork import QNetworkProxy

from qgis_landcover.qgis_glue.network import requests_proxies


@pytest.fixture
def manager() -> Iterator[QgsNetworkAccessManager]:
    """QGIS's network manager, left without a proxy after the test."""
    manager = QgsNetworkAccessManager.instance()
    yield manager
    manager.setFallbackProxyAndExcludes(QNetworkProxy(QNetworkProxy.NoProxy), [], [])


def test_http_proxy_with_credentials_and_excluded_urls(manager: QgsNetworkAccessManager) -> None:
    proxy = QNetworkProxy(QNetworkProxy.HttpProxy, "proxy.example", 3128, "me", "p@ss:word")
    manager.setFallbackProxyAndExcludes(
        proxy,
        ["https://intranet.example/models/", "https://intranet.example/other/"],
        ["localhost"],
    )
    # '@' and ':' in the password are percent-encoded (RFC 3986), duplicates dropped.
    assert requests_proxies() == {
        "http": "http://me:p%40ss%3Aword@proxy.example:3128",
        "https": "http://me:p%40ss%3Aword@proxy.example:3128",
        "no_proxy": "intranet.example,localhost",
    }


@pytest.mark.parametrize(
    ("proxy", "url"),
    [
        (
            QNetworkProxy(QNetworkProxy.HttpCachingProxy, "cache.example", 8080),
            "http://cache.example:8080",
        ),
        (
            QNetworkProxy(QNetworkProxy.Socks5Proxy, "socks.example", 1080),
            "socks5h://socks.example:1080",
        ),
        (
            QNetworkProxy(QNetworkProxy.HttpProxy, "proxy.example", 3128, "me"),
            "http://me@proxy.example:3128",
        ),
    ],
)
def test_proxy_types_and_user_without_password(
    manager: QgsNetworkAccessManager, proxy: QNetworkProxy, url: str
) -> None:
    manager.setFallbackProxyAndExcludes(proxy, [], [])
    assert requests_proxies() == {"http": url, "https": url}


@pytest.mark.parametrize(
    "proxy",
    [
        QNetworkProxy(QNetworkProxy.NoProxy),
        QNetworkProxy(QNetworkProxy.FtpCachingProxy, "ftp.example", 21),  # no requests scheme
        QNetworkProxy(QNetworkProxy.HttpProxy, "", 3128),  # no host
    ],
)
def test_no_usable_proxy_leaves_requests_to_the_environment(
    manager: QgsNetworkAccessManager, proxy: QNetworkProxy
) -> None:
    manager.setFallbackProxyAndExcludes(proxy, ["https://intranet.example/"], [])
    assert requests_proxies() is None
