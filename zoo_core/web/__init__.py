"""The zoo in a browser and over HTTP: ``zoo serve`` (pages, their JSON twins, a TensorFlow
Serving-style predict API) and ``zoo site`` (the same pages as static files).

- ``pages.py``: what each page shows, as the library computes it for the command line
  (``zoo leaderboard --format json``, ``zoo show --json``, ``zoo runs --json``, ``zoo list
  --json``, ``zoo sweep status --json``): one dict per page, its ``.json`` twin.
- ``render.py``: the Jinja2 templates (``templates/``, autoescaped) over those dicts, and the
  links between pages (absolute for the server, relative for a static site).
- ``costsvg.py``: the leaderboard's accuracy-against-cost picture as SVG, a link per point.
- ``models.py``: the classifiers the server loaded (each once), and requests to them:
  TensorFlow Serving's REST format, and uploaded files within byte and pixel caps.
- ``app.py``: the Starlette application (``zoo serve``); ``site.py``: ``zoo site``.

Static files (``static/``: the style sheet and the one script) ship in the package; nothing is
loaded from elsewhere. Needs ``zoo-core[web]`` (Starlette, uvicorn, Jinja2); nothing here
imports click, and TensorFlow is imported only when a model is first asked to predict.
"""
