"""``zoo serve`` and ``zoo site``: the zoo in a browser (:mod:`zoo_core.web`, the extra
``zoo-core[web]``), imported inside the commands so that ``--help`` stays light."""

from __future__ import annotations

import click

from zoo_core.cli.common import store_location
from zoo_core.errors import ZooError

MISSING = ("zoo serve and zoo site need the web extra: pip install 'zoo-core[web]' "
           "(Starlette, uvicorn, Jinja2)")


def _web():
    try:
        import jinja2  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise ZooError(f"{MISSING}; missing: {e.name}") from None


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address to listen on; anything but a loopback address lets other "
                   "machines read the store and call its models.")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8000, show_default=True,
              help="The port to listen on.")
@click.pass_obj
def serve(state, host, port):
    """Serve the leaderboard, model cards, runs and a TF Serving-style predict API over HTTP.

    \b
    Pages: /  /models/NAME  /runs/ID  /compare?a=ID&b=ID  /sweeps/ID  (each with a .json twin)
    API:   GET /v1/models/NAME    POST /v1/models/NAME:predict  {"instances": [...]}
    Read-only. NAME is a model (its best run, as `zoo predict MODEL` chooses) or a run id.
    """
    _web()
    import uvicorn

    from zoo_core.web.app import create_app, is_loopback

    if not is_loopback(host):
        click.echo(f"warning: listening on {host}, not a loopback address: every machine that "
                   "reaches it can read this store's runs and call its models (there is no "
                   "login); use --host 127.0.0.1 to keep it to this machine", err=True)
    app = create_app(store_location(), state.registry, host)
    click.echo(f"zoo serve: http://{'[' + host + ']' if ':' in host else host}:{port}/ "
               "(Ctrl-C stops it)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)


@click.command("site")
@click.option("--output", "-o", type=click.Path(file_okay=False), required=True,
              help="The folder to write the site into (replaced whole if `zoo site` wrote it).")
@click.option("--force", is_flag=True, help="Replace a non-empty folder zoo site did not write.")
@click.pass_obj
def site(state, output, force):
    """Write the leaderboard, model cards, runs and sweeps as static pages (relative links,
    pictures copied): open DIR/index.html from file://, or publish DIR on any static host."""
    _web()
    from pathlib import Path

    from zoo_core.store import open_store
    from zoo_core.web.site import build

    with open_store(store_location()) as store:
        built = build(state.zoo(), store, Path(output), force)
    click.echo(f"wrote {built.pages} pages and {built.pictures} pictures to {built.folder}; "
               f"open {built.folder / 'index.html'}")


COMMANDS = [serve, site]
