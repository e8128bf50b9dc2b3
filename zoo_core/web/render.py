"""Pages from templates: a Jinja2 environment over ``templates/`` that escapes every value
(a run tagged ``<script>`` shows the text), the leaderboard's cell formats as filters, and
the links between pages, absolute for ``zoo serve`` and relative for ``zoo site``."""

from __future__ import annotations

import math
import urllib.parse
from typing import Any

import jinja2

from zoo_core import __version__
from zoo_core.results import leaderboard as lb
from zoo_core.web import costsvg
from zoo_core.web.pages import SERVED_FILES


class Links:
    """The address of each page, file and static asset.

    Args:
        root: the way from the page to the site's root: ``/`` on the server; ``""``,
            ``../`` ... in a static site (so that it opens from ``file://``).
        site: a static site: pages end in ``.html``, a run's files sit beside its page, and
            the pages that need a server (compare, try it) have no link.
    """

    def __init__(self, root: str = "/", site: bool = False):
        self.root, self.site = root, site
        self.suffix = ".html" if site else ""

    def home(self, include_partial: bool = False) -> str:
        if self.site:
            return f"{self.root}{'index-partial' if include_partial else 'index'}.html"
        return f"{self.root}?include_partial=1" if include_partial else self.root

    def run(self, run_id: str) -> str:
        return f"{self.root}runs/{_q(run_id)}{self.suffix}"

    def runs(self) -> str:
        return f"{self.root}runs{self.suffix}"

    def model(self, name: str, dataset: str | None = None) -> str:
        query = f"?dataset={_q(dataset)}" if dataset and not self.site else ""
        return f"{self.root}models/{_q(name)}{self.suffix}{query}"

    def sweep(self, sweep_id: str) -> str:
        return f"{self.root}sweeps/{_q(sweep_id)}{self.suffix}"

    def sweeps(self) -> str:
        return f"{self.root}sweeps{self.suffix}"

    def file(self, run_id: str, name: str) -> str:
        return f"{self.root}runs/{_q(run_id)}/{'' if self.site else 'files/'}{_q(name)}"

    def weights(self, name: str, dataset: str) -> str | None:
        return None if self.site else f"{self.root}models/{_q(name)}/weights/{_q(dataset)}.zoopack"

    def compare(self, a: str, b: str) -> str | None:
        return None if self.site else f"{self.root}compare?a={_q(a)}&b={_q(b)}"

    def twin(self, page: str) -> str:
        """The ``.json`` twin of a page's address."""
        path, sep, query = page.partition("?")
        if self.site:
            path = path.removesuffix(".html")
        if not path or path.endswith("/"):
            path += "index"
        return f"{path}.json{sep}{query}"

    def static(self, name: str) -> str:
        return f"{self.root}static/{name}"

    def api(self, path: str) -> str:
        return f"{self.root}{path}"


def _q(text: str) -> str:
    return urllib.parse.quote(str(text), safe="")


def percent(value: float | None, digits: int = 2) -> str:
    """A fraction as ``91.23 %``; ``-`` for none, ``nan``/``inf`` as they are."""
    if value is None:
        return "-"
    if not math.isfinite(value):
        return str(value)
    return f"{100 * value:.{digits}f} %"


def number(value: float | None, fmt: str = "{:.4f}") -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, float) and not math.isfinite(value) else fmt.format(value)


def setting(value: Any) -> str:
    """A setting's value as the command line writes it (``true``, ``0.001``)."""
    if isinstance(value, bool):
        return str(value).lower()
    return "-" if value is None else lb.format_setting(value)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("zoo_core.web", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True)
    env.filters.update(
        percent=percent, number=number, setting=setting, accuracy=lb.format_accuracy,
        count=lb.format_count, duration=lb.format_duration, rate=lb.format_rate,
        commas=lambda v: "-" if v is None else f"{v:,}",
        # a value for a sortable cell: numbers as they are, none last
        sortkey=lambda v: "" if v is None or (isinstance(v, float) and not math.isfinite(v))
        else v)
    env.globals.update(version=__version__, costsvg=costsvg.panels, served=SERVED_FILES,
                       config_labels=lb.config_labels)
    return env


_ENV: jinja2.Environment | None = None


def render(template: str, links: Links, **context: Any) -> str:
    """The page ``template`` (a file of ``templates/``) with ``context``, every value escaped."""
    global _ENV
    if _ENV is None:
        _ENV = _environment()
    return _ENV.get_template(template).render(links=links, **context)
