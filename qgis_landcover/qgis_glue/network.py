# SPDX-License-Identifier: GPL-2.0-or-later
"""QGIS's network proxy (Settings > Options > Network) for the core's downloads, which
use ``requests`` rather than QGIS's network manager."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from qgis.core import QgsNetworkAccessManager
from qgis.PyQt.QtNetwork import QNetworkProxy

PROXY_SCHEMES = {
    QNetworkProxy.ProxyType.HttpProxy: "http",
    QNetworkProxy.ProxyType.HttpCachingProxy: "http",
    # socks5h: the proxy resolves host names (needs PySocks for requests).
    QNetworkProxy.ProxyType.Socks5Proxy: "socks5h",
}
"""``requests`` URL scheme of each QGIS proxy type that has one."""


def requests_proxies() -> dict[str, str] | None:
    """QGIS's configured proxy as a ``requests`` mapping (``http``, ``https`` and, for
    QGIS's excluded URLs, ``no_proxy`` host names separated by commas).

    ``None`` when QGIS uses no explicit proxy or the system's: ``requests`` then
    follows the ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` environment variables.
    User and password are percent-encoded into the URL.
    """
    manager = QgsNetworkAccessManager.instance()
    if manager.useSystemProxy():
        return None
    proxy = manager.fallbackProxy()
    scheme = PROXY_SCHEMES.get(proxy.type())
    if scheme is None or not proxy.hostName():
        return None
    credentials = ""
    if proxy.user():
        credentials = quote(proxy.user(), safe="")
        if proxy.password():
            credentials += ":" + quote(proxy.password(), safe="")
        credentials += "@"
    url = f"{scheme}://{credentials}{proxy.hostName()}:{proxy.port()}"
    proxies = {"http": url, "https": url}
    excluded = [*manager.excludeList(), *manager.noProxyList()]
    hosts = [urlsplit(item).hostname or item.strip() for item in excluded if item.strip()]
    if hosts:
        proxies["no_proxy"] = ",".join(dict.fromkeys(hosts))
    return proxies
