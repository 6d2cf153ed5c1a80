"""The web console: server-rendered pages over the same services as the API.

Routes (one module per page) call the domains' services with the caller the session
cookies name (`deps.py`); they hold no SQL and no rule of their own. Templates are
Jinja2, partial updates htmx, charts uPlot; the static files, third-party ones
included, are served by the process itself (`static/vendor/`, refreshed by `make
assets`).
"""
