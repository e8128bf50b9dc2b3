"""The catalogue: what exists. Models and datasets, where they come from, what they declare.

- ``hookspecs.py``: the ``hookimpl`` marker and the hooks a plugin may implement.
- ``specs.py``: what a registration is (``HParam``, ``ModelSpec``, ``DatasetSpec``, the name
  rule, ``FILE_ROLES``) and the ``register`` callbacks plugins receive (``RegisterModel``,
  ``RegisterDataset``).
- ``plugins.py``: loading the ``zoo`` entry points, crash-isolated, and checking what they
  register.
- ``registry.py``: reading and checking registry.toml (``read_catalogue``).
- ``zoo.py``: ``open_zoo()`` joins the two into a ``Zoo``: ``model()``, ``dataset()``,
  ``rows()`` for ``zoo list``.

Nothing here imports TensorFlow.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for type checkers; at run time, __getattr__ below
    from zoo_core.catalogue.zoo import Zoo, open_zoo

__all__ = ["Zoo", "open_zoo"]


def __getattr__(name: str):
    """``open_zoo`` and ``Zoo``, imported on first use: ``import zoo_core`` (what every plugin
    does for ``hookimpl``) needs only hookspecs and specs, not the plugin loader and the
    registry reader behind them."""
    if name in __all__:
        from zoo_core.catalogue import zoo

        return getattr(zoo, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
